"""Data-source and training-section pieces."""

import os

from lcjax.assets import data_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAYSTACK = os.path.join(REPO, "lcjax", "assets", "haystack")
SHARED_DATA = data_dir()  # $LCJAX_DATA_DIR (full official data) or the subsets bundled in lcjax/assets/data


def synthetic_source(length: int, vocab_size: int, num_pairs: int = 8, num_queries: int | None = None,
                     name: str = "kv_retrieval", weight: float = 1.0) -> dict:
  """A SourceConfig of kv-retrieval samples (`lcjax.data.synthetic`)."""
  return {"name": name, "format": "synthetic", "weight": weight,
          "options": {"length": length, "vocab_size": vocab_size, "num_pairs": num_pairs, "num_queries": num_queries}}


def essays_source(weight: float = 1.0, name: str = "essays") -> dict:
  """Long documents: the shipped Paul Graham essays (a directory of .txt files)."""
  return {"name": name, "format": "text", "path": HAYSTACK, "weight": weight}


def gsm8k_sft_source(weight: float = 1.0, name: str = "gsm8k_sft") -> dict:
  """Short instruction data for SFT: GSM8K question -> answer (prompt not trained)."""
  return {"name": name, "format": "jsonl", "path": os.path.join(SHARED_DATA, "gsm8k", "test.jsonl"),
          "prompt_field": "question", "response_field": "answer", "weight": weight}


def gsm8k_text_source(weight: float = 1.0, name: str = "gsm8k") -> dict:
  """Short documents (GSM8K questions as plain text)."""
  return {"name": name, "format": "jsonl", "path": os.path.join(SHARED_DATA, "gsm8k", "test.jsonl"),
          "text_field": "question", "weight": weight}


def local_run(steps: int, **extra) -> dict:
  """Train-section fields for a short CPU run: one device, frequent checkpoints. The run-control fields are all
  present so `--config.train.<field>=` can override them (config_flags only overrides existing keys)."""
  return {"steps": steps, "num_devices": 1, "log_every": 1, "peak_flops": 1e11, "stop_at": 0, "seed": 0,
          "grad_accum": 1, "remat": "none", "progress": False,
          "checkpoint": {"every": max(1, steps // 4), "max_to_keep": 2, "async_save": True}, **extra}
