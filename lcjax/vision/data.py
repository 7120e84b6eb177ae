"""Image / mask data for saliency: a folder source (DUTS / ECSSD layouts), the synthetic set, and grain pipelines.

Folder layouts found under `root` (images .jpg/.jpeg/.png/.bmp, masks .png/.bmp, paired by file stem):
  DUTS     DUTS-TR/DUTS-TR-Image/*.jpg    + DUTS-TR/DUTS-TR-Mask/*.png     (root = DUTS-TR or DUTS-TE)
  ECSSD    ECSSD/images/*.jpg             + ECSSD/ground_truth_mask/*.png  (root = ECSSD)
  generic  root/<image dir> + root/<mask dir> where the names contain "image"/"img" and "mask"/"gt"/"ground"
Masks are binarised as in the standard evaluation code (`MAE.m`: value > 128 of the 0..255 first channel).

A pipeline yields batches {"image": float32 [B, S, S, 3] in [0, 1], "mask": uint8 [B, S, S]}; the iterator's
get_state / set_state round-trips exactly (it is stored in each training checkpoint).
"""

from __future__ import annotations

import dataclasses
import os

import grain
import numpy as np

from lcjax.errors import ConfigError, DataError, ShapeError
from lcjax.vision.synthetic import SyntheticSaliency

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
MASK_EXTS = (".png", ".bmp")
_IMAGE_WORDS, _MASK_WORDS = ("image", "img"), ("mask", "gt", "ground")


def _find_dirs(root: str) -> tuple[str, str]:
  """(image dir, mask dir) under `root` (see the module docstring)."""
  if not os.path.isdir(root):
    raise DataError(f"saliency folder not found: {root}")
  subdirs = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  masks = [d for d in subdirs if any(w in d.lower() for w in _MASK_WORDS)]
  images = [d for d in subdirs if d not in masks and any(w in d.lower() for w in _IMAGE_WORDS)]
  if len(images) != 1 or len(masks) != 1:
    raise DataError(f"{root}: expected one image folder (name containing {'/'.join(_IMAGE_WORDS)}) and one mask "
                    f"folder (name containing {'/'.join(_MASK_WORDS)}), as in DUTS (DUTS-TR-Image, DUTS-TR-Mask) or "
                    f"ECSSD (images, ground_truth_mask); found {subdirs}")
  return os.path.join(root, images[0]), os.path.join(root, masks[0])


def _by_stem(folder: str, exts: tuple[str, ...]) -> dict[str, str]:
  return {os.path.splitext(f)[0]: os.path.join(folder, f) for f in sorted(os.listdir(folder))
          if f.lower().endswith(exts)}


def load_image(path: str) -> np.ndarray:
  """uint8 [H, W, 3] RGB of an image file."""
  from PIL import Image

  try:
    with Image.open(path) as im:
      return np.asarray(im.convert("RGB"))
  except OSError as e:
    raise DataError(f"{path}: cannot read the image ({e})") from None


def load_mask(path: str) -> np.ndarray:
  """uint8 [H, W] in {0, 1}: the first channel > 128 (as the standard evaluation code binarises)."""
  from PIL import Image

  try:
    with Image.open(path) as im:
      m = np.asarray(im)
  except OSError as e:
    raise DataError(f"{path}: cannot read the mask ({e})") from None
  m = m[..., 0] if m.ndim == 3 else m
  if m.dtype == bool or m.max() <= 1:
    return m.astype(np.uint8)
  return (m > 128).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class SaliencyFolder:
  """Random-access (image, mask) pairs of a DUTS / ECSSD style folder (a grain data source).

  Attributes:
    root: the dataset folder.  Samples: {"image": uint8 [H, W, 3], "mask": uint8 [H, W], "name": stem}.
  """

  root: str

  def __post_init__(self):
    image_dir, mask_dir = _find_dirs(self.root)
    images, masks = _by_stem(image_dir, IMAGE_EXTS), _by_stem(mask_dir, MASK_EXTS)
    missing = sorted(set(images) - set(masks))
    if missing:
      raise DataError(f"{mask_dir}: no mask for {len(missing)} image(s), e.g. {missing[:3]}")
    if not images:
      raise DataError(f"{image_dir}: no images ({', '.join(IMAGE_EXTS)})")
    object.__setattr__(self, "_pairs", tuple((s, images[s], masks[s]) for s in sorted(images)))

  def __len__(self) -> int:
    return len(self._pairs)

  def __getitem__(self, index: int) -> dict:
    name, image_path, mask_path = self._pairs[index]
    image, mask = load_image(image_path), load_mask(mask_path)
    if image.shape[:2] != mask.shape:
      raise ShapeError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {image_path} is "
                       f"{image.shape[1]}x{image.shape[0]} (width x height); masks must match their images")
    return {"image": image, "mask": mask, "name": name}


def check_pair(image: np.ndarray, mask: np.ndarray) -> None:
  """Raises `ShapeError` unless image is [H, W, 3] and mask [H, W] of the same H, W."""
  if image.ndim != 3 or image.shape[-1] != 3 or mask.ndim != 2 or image.shape[:2] != mask.shape:
    raise ShapeError(f"image must be [H, W, 3] and mask [H, W] of the same size; got {image.shape} and "
                     f"{mask.shape}")


def resize_sample(sample: dict, size: int) -> dict:
  """{"image": float32 [S, S, 3] in [0, 1], "mask": uint8 [S, S]}: bilinear image, nearest mask."""
  from PIL import Image

  image, mask = sample["image"], sample["mask"]
  check_pair(image, mask)
  if image.dtype != np.uint8:
    image = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
  if image.shape[:2] != (size, size):
    image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    mask = np.asarray(Image.fromarray(mask * 255).resize((size, size), Image.NEAREST)) > 127
  return {"image": image.astype(np.float32) / 255.0, "mask": np.asarray(mask, np.uint8)}


@dataclasses.dataclass(frozen=True)
class SaliencyDataConfig:
  """A saliency data pipeline.

  Attributes:
    source: "synthetic" or "folder".  path: the folder (DUTS-TR, ECSSD, ...) for "folder".
    split: synthetic split (train | test | large).  num: synthetic samples.  size: S, training resolution.
    batch_size: B.  seed: the synthetic set's and the shuffle's seed.  shuffle: shuffle each epoch.
    flip: random horizontal flips (seeded per sample).
  """

  source: str = "synthetic"
  path: str = ""
  split: str = "train"
  num: int = 2000
  size: int = 64
  batch_size: int = 16
  seed: int = 0
  shuffle: bool = True
  flip: bool = False

  def __post_init__(self):
    if self.source not in ("synthetic", "folder"):
      raise ConfigError(f"unknown saliency source {self.source!r}; accepted: synthetic, folder")
    if self.source == "folder" and not self.path:
      raise ConfigError("a folder source needs path (a DUTS / ECSSD style folder)")
    if self.batch_size < 1:
      raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")


def open_saliency_source(cfg: SaliencyDataConfig):
  """The random-access source of `cfg` (SyntheticSaliency or SaliencyFolder)."""
  if cfg.source == "synthetic":
    return SyntheticSaliency(cfg.num, cfg.size, cfg.seed, cfg.split)
  return SaliencyFolder(cfg.path)


def _stack(rows) -> dict:
  return {k: np.stack([r[k] for r in rows]) for k in ("image", "mask")}


class _Prepare(grain.transforms.RandomMap):
  def __init__(self, size: int, flip: bool):
    self.size, self.flip = size, flip

  def random_map(self, sample: dict, rng: np.random.Generator) -> dict:
    out = resize_sample(sample, self.size)
    if self.flip and rng.random() < 0.5:
      out = {k: np.ascontiguousarray(v[:, ::-1]) for k, v in out.items()}
    return out


def build_saliency_pipeline(cfg: SaliencyDataConfig, repeat: bool = True) -> grain.IterDataset:
  """Batches {"image": [B, S, S, 3], "mask": [B, S, S]}: endless when `repeat` (full batches), else one pass
  (the last batch may be smaller)."""
  ds = grain.MapDataset.source(open_saliency_source(cfg))
  if cfg.shuffle:
    ds = ds.shuffle(seed=cfg.seed)
  if repeat:
    ds = ds.repeat(None)
  ds = ds.random_map(_Prepare(cfg.size, cfg.flip), seed=cfg.seed + 1)
  read = grain.ReadOptions(num_threads=1, prefetch_buffer_size=4)
  return ds.to_iter_dataset(read).batch(cfg.batch_size, drop_remainder=repeat, batch_fn=_stack)
