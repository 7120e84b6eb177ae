"""Reference peer: llama.cpp through llama-cpp-python on the same GGUF (runs inside .venv-peers).

Requests (JSON on stdin, answer on stdout):
  {"op": "tokenize", "gguf": path, "texts": [...]}                        -> {"ids": [[...], ...]}
  {"op": "bench", "gguf": path, "context": n, "decode_tokens": m, "threads": t}
      -> {"prefill_tok_s": x, "decode_tok_s": y}
  {"op": "logits", "gguf": path, "ids": [...], "rows": [...], "threads": t}
      -> {"logits": [[V floats] per row in rows], "argmax": [one per position]}
"""

import json
import sys
import time


def main():
  req = json.load(sys.stdin)
  from llama_cpp import Llama

  if req["op"] == "tokenize":
    model = Llama(model_path=req["gguf"], vocab_only=True, verbose=False)
    ans = {"ids": [model.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in req["texts"]]}
  elif req["op"] == "bench":
    ctx, n_dec = req["context"], req["decode_tokens"]
    model = Llama(model_path=req["gguf"], n_ctx=ctx + n_dec + 8, n_batch=512, n_threads=req.get("threads") or 2,
                  verbose=False)
    import random

    rng = random.Random(0)
    ids = [rng.randrange(100, 40000) for _ in range(ctx)]
    model.eval(ids[:32])  # warm up
    model.reset()
    t0 = time.perf_counter()
    model.eval(ids)
    t1 = time.perf_counter()
    import numpy as np

    def last_logits():  # llama-cpp-python keeps no scores unless logits_all; read the context's last row
      return np.ctypeslib.as_array(model._ctx.get_logits(), shape=(model.n_vocab(),))

    for _ in range(n_dec):
      model.eval([int(last_logits().argmax())])
    t2 = time.perf_counter()
    ans = {"prefill_tok_s": ctx / (t1 - t0), "decode_tok_s": n_dec / (t2 - t1)}
  elif req["op"] == "logits":
    import numpy as np

    ids = req["ids"]
    model = Llama(model_path=req["gguf"], n_ctx=len(ids) + 8, n_batch=512, n_threads=req.get("threads") or 2,
                  logits_all=True, verbose=False)
    model.eval(ids)
    scores = np.asarray(model.scores[:len(ids)], np.float32)
    ans = {"logits": scores[req["rows"]].tolist(), "argmax": scores.argmax(-1).tolist()}
  else:
    raise SystemExit(f"unknown op {req['op']!r}")
  json.dump(ans, sys.stdout)


if __name__ == "__main__":
  main()
