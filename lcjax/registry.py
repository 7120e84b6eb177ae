"""One registry per kind of thing: attention impls, decode impls, KV methods, RoPE scalings, tasks, metrics, tiers."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Callable, Generic, Iterable, TypeVar

from lcjax.errors import UnknownNameError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Entry(Generic[T]):
  """A registered item with the platforms it runs on and free-form capabilities."""

  name: str
  value: T
  platforms: tuple[str, ...] | None  # None: runs everywhere.
  caps: dict
  doc: str


class Registry(Generic[T]):
  """Maps names to items of one kind, with helpful errors for unknown names.

  Args:
    kind: what the registry holds, used in error messages ("attention impl", "RoPE scaling", ...).
  """

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, Entry[T]] = {}

  def register(self, name: str, value: T | None = None, *, platforms: Iterable[str] | None = None,
               caps: dict | None = None, doc: str = "") -> Callable[[T], T] | T:
    """Registers `value` under `name`; without `value`, returns a decorator.

    Args:
      name: unique name within this registry.
      value: the item. When omitted, `register` is used as a decorator.
      platforms: JAX platforms the item runs on (`cpu`, `gpu`, `tpu`); None means every platform.
      caps: capabilities the item declares (for example `{"grad": True}`), read by dispatchers.
      doc: one line shown by `lcjax info`; defaults to the first docstring line.
    """

    def _add(item: T) -> T:
      if name in self._entries:
        raise ValueError(f"{self.kind} {name!r} is registered twice")
      line = doc or ((getattr(item, "__doc__", None) or "").strip().splitlines() or [""])[0]
      self._entries[name] = Entry(name, item, tuple(platforms) if platforms is not None else None,
                                  dict(caps or {}), line)
      return item

    return _add if value is None else _add(value)

  def entry(self, name: str) -> Entry[T]:
    """Returns the full entry for `name`, raising `UnknownNameError` listing the known names."""
    if name not in self._entries:
      close = difflib.get_close_matches(name, self._entries, n=1)
      hint = f" Did you mean {close[0]!r}?" if close else ""
      raise UnknownNameError(
          f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}.{hint}")
    return self._entries[name]

  def get(self, name: str) -> T:
    """Returns the item registered under `name`."""
    return self.entry(name).value

  def names(self) -> list[str]:
    """All registered names, sorted."""
    return sorted(self._entries)

  def entries(self) -> list[Entry[T]]:
    """All entries, sorted by name."""
    return [self._entries[n] for n in self.names()]

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def instantiate(self, name: str, **options):
    """The dataclass registered under `name` built with `options`; unknown names or options raise, naming what
    is accepted."""
    from lcjax.errors import ConfigError

    cls = self.get(name)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
      raise ConfigError(f"unknown option(s) {unknown} for {self.kind} {name!r}; accepted: {sorted(fields)}")
    return cls(**options)
