"""Reference peer: HF transformers (torch CPU) on the same GGUF. Runs inside .venv-peers (Python 3.11).

Called by lcjax's parity tests and benchmarks through a subprocess (`lcjax.peers.call_peer`): one JSON request
on stdin, one JSON answer on stdout; arrays travel as .npy files in a directory the caller names.

Requests:
  {"op": "tokenize", "gguf": path, "texts": [...]}                       -> {"ids": [[...], ...]}
  {"op": "logits", "gguf": path, "tokens": [...], "out": dir}           -> writes logits.npy [T, V] fp32
  {"op": "greedy", "gguf": path, "tokens": [...], "max_new_tokens": n}  -> {"tokens": [...]}
  {"op": "bench", "gguf": path, "context": n, "decode_tokens": m, "threads": t}
      -> {"prefill_tok_s": x, "decode_tok_s": y, "generate_prefill_tok_s": .., "generate_decode_tok_s": ..}
         (a lean forward loop over past_key_values, and the same measured through `model.generate`)
"""

import json
import os
import sys
import time


def _load(gguf_path, need_model=True):
  import torch
  from transformers import AutoModelForCausalLM, AutoTokenizer
  folder, name = os.path.split(gguf_path)
  tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
  model = None
  if need_model:
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model.eval()
  return tok, model


def main():
  req = json.load(sys.stdin)
  import numpy as np
  import torch
  if req.get("threads"):
    torch.set_num_threads(int(req["threads"]))
  op = req["op"]
  tok, model = _load(req["gguf"], need_model=op != "tokenize")
  if op == "tokenize":
    ans = {"ids": [tok.encode(t, add_special_tokens=False) for t in req["texts"]],
           "ids_special": [tok.encode(t) for t in req["texts"][:4]],
           "tied": None}
  elif op == "logits":
    with torch.no_grad():
      out = model(torch.tensor([req["tokens"]])).logits[0].float().numpy()
    np.save(os.path.join(req["out"], "logits.npy"), out)
    ans = {"shape": list(out.shape), "tied": bool(model.config.tie_word_embeddings)}
  elif op == "greedy":
    with torch.no_grad():
      ids = model.generate(torch.tensor([req["tokens"]]), max_new_tokens=req["max_new_tokens"], do_sample=False,
                           eos_token_id=None, pad_token_id=0, min_new_tokens=req["max_new_tokens"])
    ans = {"tokens": ids[0, len(req["tokens"]):].tolist()}
  elif op == "bench":
    ctx, n_dec = req["context"], req["decode_tokens"]
    ids = torch.randint(100, 40000, (1, ctx))
    with torch.no_grad():
      model(ids[:, :64])  # warm up
      t0 = time.perf_counter()
      out = model(ids, use_cache=True)
      t1 = time.perf_counter()
      past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
      t2 = time.perf_counter()
      for _ in range(n_dec):
        out = model(nxt, past_key_values=past, use_cache=True)
        past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
      t3 = time.perf_counter()
    # The same through `generate()` (what most users call): decode = n / (t(1 + n new tokens) - t(1 new token)),
    # each time the best of two runs.
    def timed_generate(n_new):
      best = float("inf")
      for _ in range(2):
        start = time.perf_counter()
        with torch.no_grad():
          model.generate(ids, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False, pad_token_id=0)
        best = min(best, time.perf_counter() - start)
      return best

    one, many = timed_generate(1), timed_generate(n_dec + 1)
    ans = {"prefill_tok_s": ctx / (t1 - t0), "decode_tok_s": n_dec / (t3 - t2),
           "generate_prefill_tok_s": ctx / one, "generate_decode_tok_s": n_dec / max(many - one, 1e-9)}
  else:
    raise SystemExit(f"unknown op {op!r}")
  json.dump(ans, sys.stdout)


if __name__ == "__main__":
  main()
