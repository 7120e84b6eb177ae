"""`lcjax segment IMAGE --model DIR`: the saliency map of an image, written as an 8-bit PNG."""

from __future__ import annotations

import os

from lcjax.commands import COMMANDS


def _add(p) -> None:
  p.add_argument("image", help="input image (jpg, png, ...)")
  p.add_argument("--model", required=True, help="a saliency model directory (a training workdir or its model/)")
  p.add_argument("--out", default=None, help="output PNG (default: IMAGE's name + _saliency.png, beside it)")
  p.add_argument("--decode", default=None, help="decode rule of a connectivity model: mean, any, bilateral "
                                                "(default: the model's)")


def segment_image(image_path: str, model_dir: str, out: str | None = None, decode: str | None = None) -> str:
  """Writes the saliency PNG of `image_path` (same width and height, 0..255) and returns its path.

  The image is resized to the model's training resolution, and the map back to the image's size (bilinear).
  """
  import jax.numpy as jnp
  import numpy as np
  from PIL import Image

  from lcjax.vision.connectivity import DECODE_RULES
  from lcjax.vision.data import load_image, resize_sample
  from lcjax.vision.train import load_saliency_model, predict

  if decode is not None:
    DECODE_RULES.entry(decode)  # unknown rule: UnknownNameError before any work
  cfg, graphdef, params = load_saliency_model(model_dir)
  image = load_image(image_path)
  height, width = image.shape[:2]
  small = resize_sample({"image": image, "mask": np.zeros((height, width), np.uint8)}, cfg.image_size)["image"]
  saliency = np.asarray(predict(graphdef, params, jnp.asarray(small[None]), cfg, decode)[0], np.float32)
  full = np.asarray(Image.fromarray(saliency).resize((width, height), Image.BILINEAR))
  out = out or os.path.splitext(image_path)[0] + "_saliency.png"
  Image.fromarray((np.clip(full, 0, 1) * 255 + 0.5).astype(np.uint8)).save(out)
  return out


def _run(args) -> int:
  print(segment_image(args.image, args.model, args.out, args.decode))
  return 0


COMMANDS.register("segment", (_add, _run), doc="write the saliency map of an image (a ConnNet model) as a PNG")
