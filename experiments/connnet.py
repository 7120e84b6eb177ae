"""ConnNet (Kampffmeyer et al. 2018): pixel-connectivity salient segmentation with a non-local long-range block,
against the 1-channel saliency baseline (issue 17; `benchmarks/connnet.py` runs the four variants).

  variant=conn_nl   8-channel connectivity head + non-local block (ConnNet)
  variant=conn      8-channel connectivity head, no non-local block
  variant=base_nl   1-channel saliency head + non-local block
  variant=base      1-channel saliency head (the plain FPN baseline)

  runlocal   the synthetic set (textured objects on the bundled natural photographs), 64 px, a small network;
             trains on a 2-core CPU in minutes and evaluates on the "test" and "large" splits, and on "large" at
             2x the resolution ("large2x")
  (default)  DUTS-TR at 256 px, evaluated on DUTS-TE and ECSSD; folders from `data=DIR` (default
             $LCJAX_DATA_DIR/saliency), laid out as DUTS-TR/DUTS-TR-{Image,Mask}, DUTS-TE/..., ECSSD/{images,
             ground_truth_mask}

  python -m lcjax.launch.main --config=experiments/connnet.py:runlocal,variant=conn_nl --workdir=/tmp/connnet
  lcjax segment IMAGE --model /tmp/connnet      writes the saliency PNG
"""

import os

import ml_collections

from lcjax.eval.experiment import parse_arg

VARIANTS = {"conn_nl": ("connectivity", True), "conn": ("connectivity", False),
            "base_nl": ("saliency", True), "base": ("saliency", False)}


def _synthetic(split: str, num: int, size: int, seed: int, batch: int) -> dict:
  return {"source": "synthetic", "split": split, "num": num, "size": size, "seed": seed, "batch_size": batch}


def _folder(path: str, size: int, batch: int) -> dict:
  return {"source": "folder", "path": path, "size": size, "batch_size": batch, "flip": True}


def get_config(arg=None):
  args = parse_arg(arg)
  variant = args.get("variant", "conn_nl")
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; accepted: {', '.join(VARIANTS)}")
  head, nonlocal_block = VARIANTS[variant]
  if args.get("runlocal"):
    size = int(args.get("size", 64))
    model = {"widths": (8, 16, 32), "fpn_dim": 16, "groups": 4, "nonlocal_dim": 16}
    data = _synthetic("train", int(args.get("num", 2000)), size, 0, int(args.get("batch", 16)))
    evals = {split: _synthetic(split, int(args.get("eval_num", 200)), size, 1, 32) for split in ("test", "large")}
    # the same large objects at twice the resolution: they span ~4x the convolutions' receptive field
    evals["large2x"] = _synthetic("large", int(args.get("eval_num", 200)), 2 * size, 1, 16)
    steps, lr = int(args.get("steps", 400)), float(args.get("lr", 5e-3))
  else:
    size = int(args.get("size", 256))
    root = args.get("data", os.path.join(os.environ.get("LCJAX_DATA_DIR", "data"), "saliency"))
    model = {"widths": (32, 64, 128, 256), "fpn_dim": 64, "groups": 8, "nonlocal_dim": 128}
    data = _folder(os.path.join(root, "DUTS-TR"), size, int(args.get("batch", 32)))
    evals = {name: {**_folder(os.path.join(root, name), size, 32), "flip": False} for name in ("DUTS-TE", "ECSSD")}
    steps, lr = int(args.get("steps", 20000)), float(args.get("lr", 1e-3))
  model.update(head=head, nonlocal_block=nonlocal_block, image_size=size, decode=args.get("decode", "mean"))
  return ml_collections.ConfigDict({
      "name": f"connnet_{variant}",
      "saliency": {"model": model, "data": data, "evals": evals, "steps": steps,
                   "log_every": int(args.get("log_every", 50)), "edge_weight": float(args.get("edge_weight", 0.0)),
                   "optimizer": {"lr": lr, "warmup_steps": min(100, steps // 10), "schedule": "cosine",
                                 "weight_decay": 1e-4}}})


def sweep(add, arg=None):
  """One run per variant (a point's `arg` is appended to the experiment argument, see lcjax.launch.xm)."""
  del arg
  for variant in VARIANTS:
    add(arg=f"variant={variant}")
