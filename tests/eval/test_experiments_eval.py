"""The evaluation experiment configs build, validate and sweep."""

import importlib.util
import os

import pytest

from lcjax.config import from_dict
from lcjax.errors import ConfigError
from lcjax.eval.experiment import parse_arg
from lcjax.eval.runner import EvalConfig

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "experiments")
NAMES = ("niah", "ruler", "needlebench", "longbench", "leval", "holistic")


def _load(name):
  spec = importlib.util.spec_from_file_location(f"experiments_{name}", os.path.join(ROOT, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("arg", [None, "runlocal", "runlocal,lengths=1k+2k,kv=dense"])
def test_configs_build_and_validate(name, arg):
  module = _load(name)
  cfg = module.get_config(arg)
  ev = from_dict(EvalConfig, cfg.eval, "eval.")
  ev.validate()
  if arg and "lengths=1k+2k" in arg:
    assert list(ev.lengths) == [1024, 2048]
  calls = []
  module.sweep(lambda **kw: calls.append(kw), arg)
  assert calls and all("eval" in c for c in calls)


def test_parse_arg_and_unknown_keys():
  assert parse_arg("runlocal,lengths=1k+4k,samples=2") == {"runlocal": True, "lengths": ["1k", "4k"], "samples": "2"}
  with pytest.raises(ConfigError, match="unknown experiment argument 'lenghts'"):
    _load("niah").get_config("lenghts=1k")
