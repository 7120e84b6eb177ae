"""Train loop: exact resume (in-process and after SIGKILL), gradient accumulation and remat equal the plain step,
metrics logs, and clear errors for bad configs and checkpoints of another model shape."""

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from flax import nnx

from lcjax.errors import CheckpointError, ConfigError
from lcjax.models.build import init_model
from lcjax.sharding.steps import llama_loss
from lcjax.training.checkpoints import Checkpointer
from lcjax.training.config import train_config
from lcjax.training.loop import load_trained, train
from lcjax.training.metrics import TensorBoardWriter, read_jsonl, read_tfevents
from lcjax.training.state import accumulate_grads, with_remat
from tests.tiny import TINY

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = dict(vocab_size=64, dim=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64,
             max_seq_len=64, tie_embeddings=False)


def _cfg(**kw):
  data = dict(sources=[dict(format="synthetic", options=dict(length=32, vocab_size=64, num_pairs=3))], seq_len=32,
              batch_size=4)
  base = dict(model=MODEL, data=data, steps=12, num_devices=1, peak_flops=1e11, checkpoint=dict(every=4),
              optimizer=dict(lr=3e-3, warmup_steps=2))
  return train_config({**base, **kw})


def _losses(workdir):
  return {r["step"]: r["loss"] for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("ref"))
  train(_cfg(), workdir)
  return workdir


def test_resume_equals_uninterrupted(reference, tmp_path):
  cfg = _cfg()
  first = train(dataclasses.replace(cfg, stop_at=7), str(tmp_path))
  assert first["step"] == 7 and sorted(Checkpointer(str(tmp_path / "checkpoints")).manager.all_steps()) == [4, 7]
  second = train(cfg, str(tmp_path))
  assert second["resumed_from"] == 7
  assert _losses(tmp_path) == _losses(reference)  # bit-identical losses, step for step
  _, _, params = load_trained(str(tmp_path))
  _, _, ref_params = load_trained(reference)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    np.testing.assert_array_equal(a, b)


def test_e2llm_augmentation_off_equals_plain_run(reference, tmp_path):
  cfg = _cfg()
  off = dataclasses.replace(cfg, data=dataclasses.replace(
      cfg.data, augment=("e2llm",), augment_options={"e2llm": {"scales": [1.0], "offset": False}}))
  train(off, str(tmp_path))
  assert _losses(tmp_path) == _losses(reference)
  on = dataclasses.replace(off, data=dataclasses.replace(off.data, augment_options={"e2llm": {"scales": [2.0]}}),
                           steps=3)
  train(on, str(tmp_path / "on"))
  assert _losses(tmp_path / "on")[1] != _losses(reference)[1]  # the scale reaches the model's RoPE


def test_checkpoint_of_another_model_shape_raises(reference, tmp_path):
  shutil.copytree(os.path.join(reference, "checkpoints"), tmp_path / "checkpoints")
  bigger = _cfg(model={**MODEL, "mlp_dim": 96})
  with pytest.raises(CheckpointError, match=r"saved with shape .*64.*expects .*96"):
    train(bigger, str(tmp_path))


def test_interrupted_save_is_ignored_and_damaged_checkpoint_raises(reference, tmp_path):
  ckdir = tmp_path / "checkpoints"
  shutil.copytree(os.path.join(reference, "checkpoints"), ckdir)
  latest = Checkpointer(str(ckdir)).latest_step()
  # A save killed before its commit leaves only orbax's temporary directory: it must not be picked up.
  shutil.copytree(ckdir / str(latest), ckdir / f"{latest + 4}.orbax-checkpoint-tmp-1234")
  assert Checkpointer(str(ckdir)).latest_step() == latest
  # A committed step whose array files are damaged is reported and skipped: the newest intact one is restored
  # and the run ends exactly like the uninterrupted one. Only when none is intact does it stop, naming each.
  _damage_arrays(ckdir / str(latest))
  assert train(_cfg(), str(tmp_path))["resumed_from"] == latest - 4
  assert _losses(tmp_path)[12] == _losses(reference)[12] and os.path.isdir(ckdir / f"{latest}.damaged")
  for step in Checkpointer(str(ckdir)).manager.all_steps():
    _damage_arrays(ckdir / str(step))
  with pytest.raises(CheckpointError, match="no intact checkpoint to resume from.*cannot restore"):
    train(_cfg(), str(tmp_path))


def _damage_arrays(step_dir):
  for root, _, files in os.walk(step_dir / "state"):
    for f in files:
      if not f.startswith("_") and "manifest" not in f:
        with open(os.path.join(root, f), "wb") as fh:
          fh.write(b"garbage")


def test_resume_skips_empty_later_step_and_bad_iterator_state(reference, tmp_path):
  """Issue 25: an empty directory named after a later step, or iterator state of the wrong types, is skipped."""
  import json

  ckdir = tmp_path / "checkpoints"
  shutil.copytree(os.path.join(reference, "checkpoints"), ckdir)
  latest = Checkpointer(str(ckdir)).latest_step()
  os.makedirs(ckdir / str(latest + 100))
  data_file = next(p for p in (ckdir / str(latest)).rglob("*") if p.is_file() and p.parent.name == "data")
  saved = json.loads(data_file.read_text())
  data_file.write_text(json.dumps({**saved, "iterator": "not a state"}))
  assert train(_cfg(), str(tmp_path))["resumed_from"] == latest - 4
  assert _losses(tmp_path)[12] == _losses(reference)[12]


def test_grad_accumulation_and_remat_equal_plain_step():
  graphdef, params = nnx.split(init_model(TINY))
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, TINY.vocab_size, (4, 17)).astype(np.int32)
  batch = {"tokens": tokens[:, :-1], "targets": tokens[:, 1:],
           "loss_mask": (rng.random((4, 16)) > 0.3).astype(np.float32)}
  loss_fn = llama_loss(graphdef)
  want = jax.jit(lambda p, b: accumulate_grads(loss_fn, p, b, 1))(params, batch)
  variants = [(with_remat(loss_fn, "save_names", save=("attn_out", "mlp_out")), 2),
              (with_remat(loss_fn, "full"), 1),
              (with_remat(loss_fn, "offload_names", save=("attn_qkv",), offload=("mlp_hidden",)), 4)]
  for fn, accum in variants:
    got = jax.jit(lambda p, b, fn=fn, accum=accum: accumulate_grads(fn, p, b, accum))(params, batch)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1]["accuracy"], want[1]["accuracy"], rtol=1e-5)
    for g, w in zip(jax.tree.leaves(got[2]), jax.tree.leaves(want[2])):
      np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


def test_metrics_logs(reference, tmp_path):
  records = read_jsonl(os.path.join(reference, "metrics.jsonl"))
  assert [r["step"] for r in records] == list(range(1, 13))
  assert records[-1]["loss"] < records[0]["loss"] and all(r["mfu"] > 0 for r in records[1:])
  [events] = os.listdir(os.path.join(reference, "tensorboard"))
  scalars = read_tfevents(os.path.join(reference, "tensorboard", events))
  assert [(s, v) for s, tag, v in scalars if tag == "loss"] == [
      (r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in records]
  tb = TensorBoardWriter(str(tmp_path))
  tb.scalars(3, {"a": 1.5, "skip": float("nan")})
  tb.close()
  assert read_tfevents(tb.path) == [(3, "a", 1.5)]


def test_bad_configs_raise():
  with pytest.raises(ConfigError, match="unknown key.*train.stepz"):
    train_config({**_cfg().__dict__, "stepz": 3})
  with pytest.raises(ConfigError, match="stage starts"):
    _cfg(stages=[{"start": 5}])
  with pytest.raises(ConfigError, match="unknown key.*stages.data"):
    _cfg(stages=[{"start": 0, "data": {"seqlen": 4}}])


def _launch(workdir, extra=()):
  env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO}
  args = [sys.executable, "-m", "lcjax.launch.main",
          "--config=experiments/passkey.py:runlocal,seq_len=64,dim=32,extra=0", f"--workdir={workdir}",
          "--config.train.steps=500", "--config.train.stop_at=300",
          "--config.train.log_every=1", "--config.train.checkpoint.every=10", *extra]
  err = open(f"{workdir}.stderr", "ab")  # a file, not a pipe: orbax logs a lot and a full pipe would block
  return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
  ref, run = tmp_path / "ref", tmp_path / "run"
  reference = _launch(ref)
  victim = _launch(run)
  log = run / "metrics.jsonl"
  deadline = time.time() + 240
  while time.time() < deadline and not (log.exists() and len(read_jsonl(str(log))) >= 40):
    time.sleep(0.02)
  victim.send_signal(signal.SIGKILL)
  victim.wait()
  killed_at = max(_losses(run))
  assert 40 <= killed_at < 300, killed_at  # killed mid-run
  assert reference.wait(timeout=300) == 0, open(f"{ref}.stderr").read()[-2000:]
  resumed = _launch(run)
  assert resumed.wait(timeout=300) == 0, open(f"{run}.stderr").read()[-2000:]
  want, got = _losses(ref), _losses(run)  # the resumed run re-logs from its checkpoint; the last value wins
  assert sorted(got) == sorted(want) == list(range(1, 301))
  assert got == want


def test_iterator_state_structure_check():
  from lcjax.training.checkpoints import DamagedCheckpointError, check_same_structure

  fresh = {"parent": {"next_index": 0, "buf": [1, 2]}, "offset": -1, "rate": 0.5}
  check_same_structure(fresh, {"parent": {"next_index": 7, "buf": []}, "offset": 3, "rate": 1}, "s")
  for bad, where in [({"parent": {"next_index": "7", "buf": []}, "offset": 3, "rate": 1.0}, r"s.parent.next_index"),
                     ({"parent": {"buf": []}, "offset": 3, "rate": 1.0}, r"s.parent: expected keys"),
                     ({"parent": {"next_index": 1, "buf": 5}, "offset": 3, "rate": 1.0}, r"s.parent.buf"),
                     ([], r"s: expected keys")]:
    with pytest.raises(DamagedCheckpointError, match=where):
      check_same_structure(fresh, bad, "s")
