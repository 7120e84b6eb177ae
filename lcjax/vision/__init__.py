"""Salient segmentation: ConnNet's pixel connectivity (Kampffmeyer et al. 2018) with a non-local long-range block.

  connectivity.py   targets from masks (8 channels, BiconNet order, c <-> 7-c), decoding (mean / any / bilateral)
  losses.py         connectivity BCE (+ boundary term), the 1-channel baseline's BCE
  network.py        ConnNet in Flax NNX: conv backbone, FPN cascade, non-local block through lcjax.ops.attention
  synthetic.py      a deterministic synthetic set (textured objects on bundled natural photographs)
  data.py           DUTS / ECSSD folders, grain pipelines
  train.py          data-parallel training with orbax checkpoints, evaluation with the saliency.* metrics, export
The metrics live in the eval registry (`lcjax/eval/metrics/saliency.py`); `lcjax segment` writes saliency PNGs.
"""
