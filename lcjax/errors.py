"""Specific exceptions raised at lcjax's boundaries.

Every error names the bad value and what is accepted, so a user can fix the call without reading the source.
"""


class LcjaxError(Exception):
  """Base class of every error lcjax raises on purpose."""


class ConfigError(LcjaxError, ValueError):
  """A config has an unknown key, a missing key or a value outside what is accepted."""


class UnknownNameError(LcjaxError, KeyError):
  """A registry was asked for a name it does not hold (impl, KV method, RoPE scaling, task, ...)."""

  def __str__(self):  # KeyError quotes its message; keep it readable.
    return str(self.args[0]) if self.args else ""


class ImplUnavailableError(LcjaxError, RuntimeError):
  """A named implementation cannot run on this platform (no silent fallback)."""


class ShapeError(LcjaxError, ValueError):
  """Arrays with shapes or dtypes the operation does not accept."""


class CheckpointError(LcjaxError, IOError):
  """A checkpoint file is missing, corrupt, truncated or does not match the model."""


class ContextLengthError(LcjaxError, ValueError):
  """A prompt (plus requested generation) does not fit the model's context."""


class DataError(LcjaxError, IOError):
  """An evaluation data file is missing or malformed (the message names the file and, for JSONL, the line)."""


class ShardingError(LcjaxError, ValueError):
  """A mesh, rule set or sharded layout that cannot work (bad axis, sizes that do not divide, no active mesh)."""

class CapacityError(LcjaxError, ValueError):
  """Data does not fit the memory it was asked to go to (a tier, a device budget, a placement plan)."""


class ValueRangeError(LcjaxError, ValueError):
  """An array holds values outside the accepted set (a non-binary mask, probabilities outside [0, 1])."""


class RewardError(LcjaxError, RuntimeError):
  """A reward function raised on a (prompt, response) pair; the message names the reward, the row and the cause."""
