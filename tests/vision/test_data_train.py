"""Saliency data (synthetic set, DUTS / ECSSD folders, grain pipelines) and the training path: a data-parallel run
on 2 devices with an orbax checkpoint, the exported model, `lcjax segment` writing a PNG, the experiment config."""

import json
import os

import jax
import numpy as np
import pytest
from PIL import Image

from lcjax.errors import DataError, ShapeError, UnknownNameError
from lcjax.vision.data import SaliencyDataConfig, SaliencyFolder, build_saliency_pipeline
from lcjax.vision.synthetic import SyntheticSaliency

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_synthetic_set_is_deterministic_and_binary():
  a, b = SyntheticSaliency(8, 64, 3, "train"), SyntheticSaliency(8, 64, 3, "train")
  s = a[5]
  assert s["image"].shape == (64, 64, 3) and s["image"].dtype == np.float32 and s["mask"].shape == (64, 64)
  np.testing.assert_array_equal(s["image"], b[5]["image"])
  assert set(np.unique(s["mask"])) <= {0, 1} and 0 < s["mask"].mean() < 1
  assert not np.array_equal(s["mask"], a[6]["mask"])
  assert not np.array_equal(s["mask"], SyntheticSaliency(8, 64, 3, "test")[5]["mask"])
  large = SyntheticSaliency(8, 64, 3, "large")
  assert min(large[i]["mask"].mean() for i in range(8)) > 0.15  # one object spanning most of the image


def _write(path, array):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path)


@pytest.mark.parametrize("layout", [("DUTS-TR-Image", "DUTS-TR-Mask", ".jpg"), ("images", "ground_truth_mask", ".jpg")])
def test_folder_layouts_and_pipeline(tmp_path, layout):
  image_dir, mask_dir, ext = layout
  rng = np.random.default_rng(0)
  for i in range(3):
    _write(str(tmp_path / image_dir / f"img{i}{ext}"), (rng.random((40, 50, 3)) * 255).astype(np.uint8))
    mask = np.zeros((40, 50), np.uint8)
    mask[10:30, 5 + i:30] = 255
    _write(str(tmp_path / mask_dir / f"img{i}.png"), mask)
  folder = SaliencyFolder(str(tmp_path))
  assert len(folder) == 3 and folder[1]["mask"].max() == 1 and folder[1]["image"].shape == (40, 50, 3)
  cfg = SaliencyDataConfig(source="folder", path=str(tmp_path), size=32, batch_size=2, flip=True)
  it = iter(build_saliency_pipeline(cfg))
  batch = next(it)
  assert batch["image"].shape == (2, 32, 32, 3) and batch["mask"].shape == (2, 32, 32)
  state = it.get_state()
  again = next(it)
  it.set_state(state)
  np.testing.assert_array_equal(next(it)["image"], again["image"])


def test_folder_errors(tmp_path):
  _write(str(tmp_path / "images" / "a.jpg"), np.zeros((20, 30, 3), np.uint8))
  _write(str(tmp_path / "masks" / "a.png"), np.zeros((20, 31), np.uint8))
  with pytest.raises(ShapeError, match="30x20"):
    SaliencyFolder(str(tmp_path))[0]
  _write(str(tmp_path / "images" / "b.jpg"), np.zeros((20, 30, 3), np.uint8))
  with pytest.raises(DataError, match="no mask"):
    SaliencyFolder(str(tmp_path))
  with pytest.raises(DataError, match="not found"):
    SaliencyFolder(str(tmp_path / "nope"))


TINY_RUN = {"model": {"widths": (8, 16), "fpn_dim": 8, "groups": 4, "nonlocal_dim": 8, "image_size": 64},
            "data": {"num": 16, "batch_size": 4}, "steps": 2, "log_every": 1, "num_devices": 2,
            "checkpoint": {"every": 1, "async_save": False, "max_to_keep": 3}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A 2-step run on 2 devices (batch sharded over `data`), checkpointed at steps 1 and 2, evaluated on 8 images."""
  from lcjax.vision.train import saliency_train_config, train_saliency

  workdir = str(tmp_path_factory.mktemp("connnet"))
  cfg = saliency_train_config({**TINY_RUN, "evals": {"test": {"split": "test", "num": 8}}})
  return workdir, train_saliency(cfg, workdir)


def test_training_checkpoints_exports_and_evaluates(trained):
  workdir, summary = trained
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1", "2"]
  assert summary["step"] == 2 and np.isfinite(summary["loss"])
  scores = summary["eval"]["test"]
  assert scores["images"] == 8 and set(scores) >= {"mean", "any", "bilateral"}
  assert 0 <= scores["bilateral"]["mae"] <= 1 and 0 <= scores["mean"]["s_measure"] <= 1
  assert json.load(open(os.path.join(workdir, "model", "connnet_config.json")))["head"] == "connectivity"


def test_resume_from_a_checkpoint_is_exact(trained, tmp_path):
  """Step 1's checkpoint (params, optimizer state, grain iterator state) + one step == the uninterrupted run."""
  import shutil

  from lcjax.vision.train import load_saliency_model, saliency_train_config, train_saliency

  workdir, _ = trained
  resumed = str(tmp_path / "resumed")
  shutil.copytree(os.path.join(workdir, "checkpoints", "1"), os.path.join(resumed, "checkpoints", "1"))
  summary = train_saliency(saliency_train_config(TINY_RUN), resumed)
  assert summary["resumed_from"] == 1
  _, _, want = load_saliency_model(workdir)
  _, _, got = load_saliency_model(resumed)
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_segment_command_writes_the_png(trained, tmp_path):
  from lcjax.cli import main

  workdir, _ = trained
  image = tmp_path / "photo.png"
  _write(str(image), (SyntheticSaliency(1, 96, 0, "test")[0]["image"][:80] * 255).astype(np.uint8))
  out = tmp_path / "sal.png"
  assert main(["segment", str(image), "--model", workdir, "--out", str(out), "--decode", "bilateral"]) == 0
  saliency = Image.open(out)
  assert saliency.mode == "L" and saliency.size == (96, 80)
  with pytest.raises(UnknownNameError, match="bilateral"):
    from lcjax.commands.segment import segment_image

    segment_image(str(image), workdir, decode="voting")


def test_experiment_configs_build():
  from lcjax.launch.experiments import load_experiment
  from lcjax.vision.train import saliency_train_config

  exp = load_experiment(os.path.join(REPO, "experiments", "connnet.py"))
  for arg in ("runlocal,variant=base", "variant=conn_nl,data=sal"):
    cfg = saliency_train_config(exp.get_config(arg).saliency)
    assert cfg.steps >= 1
  assert saliency_train_config(exp.get_config("runlocal,variant=base").saliency).model.head == "saliency"
  assert saliency_train_config(exp.get_config("data=sal").saliency).data.path == os.path.join("sal", "DUTS-TR")


def test_data_parallel_run_equals_one_device(trained, tmp_path):
  """The 2-device run (batch sharded over `data`) trains the same params as the same run on one device."""
  from lcjax.vision.train import load_saliency_model, saliency_train_config, train_saliency

  workdir, sharded = trained
  single = train_saliency(saliency_train_config({**TINY_RUN, "num_devices": 1}), str(tmp_path / "one"))
  np.testing.assert_allclose(single["loss"], sharded["loss"], rtol=1e-5)
  _, _, want = load_saliency_model(workdir)
  _, _, got = load_saliency_model(str(tmp_path / "one"))
  for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
