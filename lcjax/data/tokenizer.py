"""Byte-level BPE tokenizer built from a GGUF file's own vocabulary and merges (no download), with chat templates.

The pre-tokenizer follows llama.cpp's table for the file's `tokenizer.ggml.pre`: e.g. SmolLM2 ("smollm") splits
every digit apart, then applies the GPT-2 regex, exactly as the model's original tokenizer.json and llama.cpp do.
HF transformers' GGUF converter drops that digit split for "smollm" (it only knows a few `pre` names), which changes
the tokens of whitespace directly before a digit ("\n\t1"); pass `pre_tokenizer="gpt2"` to reproduce HF's GGUF
tokenizer bit for bit. Control tokens (`<|im_start|>`, ...) are matched whole.
"""

from __future__ import annotations

from typing import Sequence

from lcjax.errors import CheckpointError

_GPT2 = "gpt2"
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# GGUF `tokenizer.ggml.pre` -> pre-tokenizer recipe (llama.cpp's llama-vocab.cpp groups).
PRE_TOKENIZERS = {
    "default": "gpt2", "gpt2": "gpt2",
    "smollm": "digits+gpt2", "starcoder": "digits+gpt2", "refact": "digits+gpt2",
    "llama-bpe": "llama3", "llama3": "llama3", "llama-v3": "llama3",
}
_CONTROL = 3


def _pre_tokenizer(name: str | None, where: str):
  from tokenizers import Regex, pre_tokenizers

  recipe = PRE_TOKENIZERS.get(name or "default")
  if recipe is None:
    raise CheckpointError(f"{where}: pre-tokenizer {name!r} is not supported; supported: {sorted(PRE_TOKENIZERS)}")
  byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=recipe != "llama3")
  if recipe == "llama3":
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated"), byte_level])
  if recipe == "digits+gpt2":
    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
  return byte_level


def _check_text(text) -> None:
  """ConfigError for a value that is not encodable text (not a str, or a str with lone surrogates)."""
  from lcjax.errors import ConfigError

  if not isinstance(text, str):
    raise ConfigError(f"text to encode must be a str, got {type(text).__name__}")
  try:
    text.encode("utf-8")
  except UnicodeEncodeError as e:
    raise ConfigError(f"text to encode is not valid Unicode (lone surrogate at index {e.start})") from None


class Tokenizer:
  """Text <-> token ids for a byte-level BPE model.

  Args:
    backend: a `tokenizers.Tokenizer`.  bos_id: beginning-of-sequence id.  eos_ids: ids that end generation.
    chat_template: Jinja template of the model (or None).  add_bos: whether plain `encode` prepends BOS.
  """

  def __init__(self, backend, bos_id: int | None, eos_ids: Sequence[int], chat_template: str | None,
               add_bos: bool = False):
    self.backend = backend
    self.bos_id = bos_id
    self.eos_ids = tuple(eos_ids)
    self.chat_template = chat_template
    self.add_bos = add_bos

  @classmethod
  def from_tokenizer_data(cls, data: dict, eos_ids: Sequence[int], where: str = "",
                          pre_tokenizer: str | None = None) -> "Tokenizer":
    """Builds the tokenizer from GGUF tokenizer fields (see `lcjax.checkpoint.gguf.tokenizer_data`).

    Args:
      pre_tokenizer: a key of `PRE_TOKENIZERS` overriding the file's `pre` (e.g. "gpt2" for HF-GGUF parity).
    """
    from tokenizers import AddedToken, decoders, models
    from tokenizers import Tokenizer as Backend

    if data["model"] != _GPT2:
      raise CheckpointError(f"{where}: tokenizer model {data['model']!r} is not supported; supported: byte-level "
                            f"BPE ('gpt2')")
    vocab = {tok: i for i, tok in enumerate(data["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in data["merges"]]
    try:
      backend = Backend(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    except Exception as e:  # noqa: BLE001 - tokenizers raises plain Exception for merges of unknown tokens
      raise CheckpointError(f"{where}: malformed BPE vocabulary/merges ({str(e)[:200]})") from None
    backend.pre_tokenizer = _pre_tokenizer(pre_tokenizer or data.get("pre"), where)
    backend.decoder = decoders.ByteLevel()
    control = [AddedToken(tok, special=True, normalized=False)
               for tok, kind in zip(data["tokens"], data["token_types"]) if kind == _CONTROL]
    backend.add_special_tokens(control)
    # HF builds byte-level GGUF tokenizers without a BOS; we match it (the chat template carries its markers).
    return cls(backend, data.get("bos_token_id"), eos_ids, data.get("chat_template"), add_bos=False)

  @property
  def vocab_size(self) -> int:
    """Number of ids (V)."""
    return self.backend.get_vocab_size(with_added_tokens=True)

  def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
    """Token ids of `text`; control tokens written in the text are kept whole."""
    _check_text(text)
    ids = self.backend.encode(text, add_special_tokens=False).ids
    if (self.add_bos if add_bos is None else add_bos) and self.bos_id is not None:
      ids = [self.bos_id] + ids
    return ids

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    """`encode` over many texts (in parallel threads)."""
    for text in texts:
      _check_text(text)
    return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

  def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
    """Text of `ids`."""
    return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

  def token_id(self, token: str) -> int | None:
    """The id of a token string, or None."""
    return self.backend.token_to_id(token)

  def apply_chat_template(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
    """Renders chat `messages` ([{"role": ..., "content": ...}]) with the model's template.

    Raises:
      CheckpointError: the model has no chat template.
    """
    if not self.chat_template:
      raise CheckpointError("this model has no chat template; pass raw text instead")
    from lcjax.data.chat_template import render_chat_template

    return render_chat_template(self.chat_template, messages, add_generation_prompt, name="the model's chat template")
