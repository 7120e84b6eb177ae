"""A deterministic synthetic saliency set: textured objects composited on natural photographs.

Sample i of (seed, split) is a pure function of those three values:
  background  a random crop (side 96..192 px of the 192 px copies, resized to S) of one of the bundled natural
              images (`lcjax/assets/natural`, scikit-image's CC0 / public-domain samples), randomly flipped, muted
              (saturation x0.5, contrast x0.7) so the object is the attention-grabbing region;
  objects     1-2 shapes (ellipse, rotated rectangle, star polygon) filled with a crop of *another* natural image,
              saturation x1.3, brightness jitter; the mask is the union of their pixels (binary);
  noise       N(0, 0.02^2) per channel, clipped to [0, 1].
Splits: "train" and "test" (object radius 0.12..0.45 S, 1-2 objects) and "large" (one object of radius
0.38..0.47 S: the object spans far beyond the network's receptive field, for the long-range study).
"""

from __future__ import annotations

import dataclasses
import functools
import zlib

import numpy as np

from lcjax.errors import ConfigError

SPLITS = {"train": (0.12, 0.45, 2), "test": (0.12, 0.45, 2), "large": (0.38, 0.47, 1)}
SHAPES = ("ellipse", "rectangle", "star")


@functools.lru_cache(maxsize=1)
def natural_images() -> tuple[np.ndarray, ...]:
  """The bundled photographs as float32 [192, 192, 3] arrays in [0, 1]."""
  from PIL import Image

  from lcjax.assets import natural_image_files

  return tuple(np.asarray(Image.open(p).convert("RGB"), np.float32) / 255.0 for p in natural_image_files())


def _gray(x: np.ndarray) -> np.ndarray:
  return (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]


def _saturate(x: np.ndarray, factor: float) -> np.ndarray:
  g = _gray(x)
  return g + factor * (x - g)


def _crop(rng: np.random.Generator, image: np.ndarray, size: int) -> np.ndarray:
  """A random square crop (side 96..192) of `image`, resized to `size` (bilinear), randomly flipped."""
  from PIL import Image

  side = int(rng.integers(96, image.shape[0] + 1))
  r, c = (int(rng.integers(0, image.shape[i] - side + 1)) for i in (0, 1))
  patch = Image.fromarray((image[r:r + side, c:c + side] * 255).astype(np.uint8))
  out = np.asarray(patch.resize((size, size), Image.BILINEAR), np.float32) / 255.0
  return out[:, ::-1] if rng.random() < 0.5 else out


def shape_mask(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
  """A random shape's binary mask [size, size] (bool): ellipse, rotated rectangle or star, radius in pixels."""
  y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
  cy, cx = (rng.uniform(radius * 0.8, size - radius * 0.8) for _ in range(2))
  angle = rng.uniform(0, np.pi)
  u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
  v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
  kind = SHAPES[int(rng.integers(len(SHAPES)))]
  if kind == "ellipse":
    a, b = radius, radius * rng.uniform(0.5, 1.0)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0
  if kind == "rectangle":
    a, b = radius * 0.85, radius * rng.uniform(0.45, 0.85)
    return (np.abs(u) <= a) & (np.abs(v) <= b)
  points = int(rng.integers(5, 9))
  depth = rng.uniform(0.15, 0.4)
  theta = np.arctan2(v, u)
  boundary = radius * (1.0 - depth * (0.5 + 0.5 * np.cos(points * theta)))
  return np.hypot(u, v) <= boundary


@dataclasses.dataclass(frozen=True)
class SyntheticSaliency:
  """Random-access synthetic saliency samples (a grain data source).

  Attributes:
    num: number of samples.  size: S (pixels, 64..256).  seed: the set's seed.  split: train | test | large.
  """

  num: int = 2000
  size: int = 64
  seed: int = 0
  split: str = "train"

  def __post_init__(self):
    if self.split not in SPLITS:
      raise ConfigError(f"unknown synthetic split {self.split!r}; accepted: {', '.join(SPLITS)}")
    if not 64 <= self.size <= 256 or self.num < 1:
      raise ConfigError(f"synthetic set needs 64 <= size <= 256 and num >= 1; got size={self.size}, num={self.num}")

  def __len__(self) -> int:
    return self.num

  def __getitem__(self, index: int) -> dict:
    """{"image": float32 [S, S, 3] in [0, 1], "mask": uint8 [S, S] in {0, 1}, "name": str}."""
    if not 0 <= index < self.num:
      raise IndexError(f"sample {index} out of range [0, {self.num})")
    rng = np.random.default_rng([self.seed, zlib.crc32(self.split.encode()), int(index)])
    images = natural_images()
    bg_id = int(rng.integers(len(images)))
    bg = _crop(rng, images[bg_id], self.size)
    bg = 0.5 + 0.7 * (_saturate(bg, 0.5) - 0.5)
    lo, hi, most = SPLITS[self.split]
    mask = np.zeros((self.size, self.size), bool)
    image = bg
    for _ in range(int(rng.integers(1, most + 1))):
      shape = shape_mask(rng, self.size, rng.uniform(lo, hi) * self.size)
      obj_id = (bg_id + 1 + int(rng.integers(len(images) - 1))) % len(images)
      obj = _saturate(_crop(rng, images[obj_id], self.size), 1.3) * rng.uniform(0.9, 1.2)
      image = np.where(shape[..., None], obj, image)
      mask |= shape
    image = image + rng.normal(0, 0.02, image.shape).astype(np.float32)
    return {"image": np.clip(image, 0, 1).astype(np.float32), "mask": mask.astype(np.uint8),
            "name": f"{self.split}_{index:06d}"}
