"""Config validation at the boundary: unknown keys, nested configs, bad values."""

import ml_collections
import pytest

from lcjax.config import ModelConfig, RopeConfig, from_dict, to_dict
from lcjax.errors import ConfigError
from tests.tiny import TINY


def test_round_trip_and_nested():
  d = to_dict(TINY)
  assert from_dict(ModelConfig, d) == TINY
  cd = ml_collections.ConfigDict(d)
  cd.rope.scaling = "yarn"
  cfg = from_dict(ModelConfig, cd)
  assert isinstance(cfg.rope, RopeConfig) and cfg.rope.scaling == "yarn"
  assert isinstance(cfg.eos_token_ids, tuple)


def test_unknown_keys_are_named():
  d = to_dict(TINY)
  d["num_heeds"] = 3
  with pytest.raises(ConfigError, match="unknown key\\(s\\) num_heeds for ModelConfig; accepted: .*num_heads"):
    from_dict(ModelConfig, d)
  d = to_dict(TINY)
  d["rope"]["bse"] = 1
  with pytest.raises(ConfigError, match="rope.bse for RopeConfig"):
    from_dict(ModelConfig, d)


def test_bad_values():
  with pytest.raises(ConfigError, match="multiple of num_kv_heads"):
    TINY.replace(num_heads=5)
  with pytest.raises(ConfigError, match="dim must be >= 1"):
    TINY.replace(dim=0)
  with pytest.raises(ConfigError, match="missing"):
    from_dict(ModelConfig, {"vocab_size": 3})
