"""Rematerialisation policies by name, including offload of named activations to a host tier.

Models tag activations with `jax.ad_checkpoint.checkpoint_name(x, name)`; a policy says, per name, whether the
backward pass finds the value saved on the device, offloaded to host memory (moved there in the forward pass and
back for the backward pass), or recomputed. Policies are looked up in `REMAT_POLICIES`:

| name           | saved on device        | offloaded (device -> offload_dst)  | recomputed        |
|----------------|------------------------|------------------------------------|-------------------|
| none           | everything             | -                                  | -                 |
| full           | -                      | -                                  | everything        |
| save_dots      | matmuls without batch dims | -                              | the rest          |
| save_names     | `save`                 | -                                  | the rest          |
| offload_names  | `save`                 | `offload`                          | the rest          |
| offload_dots   | -                      | matmuls without batch dims         | the rest          |

`ACTIVATION_NAMES` lists the names lcjax models use, so configs can refer to them.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax

from lcjax.errors import ConfigError
from lcjax.registry import Registry

# Activation names tagged in lcjax models (the decoder layer's input and the outputs of its sub-blocks).
ACTIVATION_NAMES = ("decoder_layer_input", "attn_qkv", "attn_out", "mlp_hidden", "mlp_out")

_cp = jax.checkpoint_policies
REMAT_POLICIES: Registry[Callable] = Registry("remat policy")
REMAT_POLICIES.register("none", lambda save, offload, src, dst: _cp.everything_saveable,
                        doc="save every activation (no recomputation)")
REMAT_POLICIES.register("full", lambda save, offload, src, dst: _cp.nothing_saveable,
                        doc="recompute every activation in the backward pass")
REMAT_POLICIES.register("save_dots", lambda save, offload, src, dst: _cp.dots_with_no_batch_dims_saveable,
                        doc="save matmul outputs without batch dims, recompute the rest")
REMAT_POLICIES.register("save_names", lambda save, offload, src, dst: _cp.save_only_these_names(*save),
                        doc="save the named activations on device, recompute the rest")
REMAT_POLICIES.register(
    "offload_names",
    lambda save, offload, src, dst: _cp.save_and_offload_only_these_names(
        names_which_can_be_saved=list(save), names_which_can_be_offloaded=list(offload), offload_src=src,
        offload_dst=dst),
    doc="save some named activations, offload others to host memory, recompute the rest")
REMAT_POLICIES.register("offload_dots", lambda save, offload, src, dst: _cp.offload_dot_with_no_batch_dims(src, dst),
                        doc="offload matmul outputs without batch dims to host memory")


def remat_policy(name: str, save: Sequence[str] = (), offload: Sequence[str] = (), offload_src: str = "device",
                 offload_dst: str = "pinned_host"):
  """The checkpoint policy `name` (see the table above).

  Args:
    name: a name in `REMAT_POLICIES`.  save: activation names kept on device.  offload: names moved to host.
    offload_src, offload_dst: JAX memory kinds for offloading.
  Raises:
    UnknownNameError: unknown policy.  ConfigError: a name both saved and offloaded, or names given to a policy
      that ignores them.
  """
  builder = REMAT_POLICIES.get(name)
  both = sorted(set(save) & set(offload))
  if both:
    raise ConfigError(f"activation name(s) {both} are both saved and offloaded; pick one")
  takes = {"save_names": ("save",), "offload_names": ("save", "offload")}.get(name, ())
  extra = [k for k, v in (("save", save), ("offload", offload)) if v and k not in takes]
  if extra:
    raise ConfigError(f"remat policy {name!r} takes no {' or '.join(extra)} names; policies that do: "
                      f"save_names (save), offload_names (save, offload)")
  if offload_dst not in ("pinned_host", "unpinned_host"):
    raise ConfigError(f"offload_dst must be pinned_host or unpinned_host, got {offload_dst!r}")
  return builder(tuple(save), tuple(offload), offload_src, offload_dst)


def remat(fn: Callable, name: str = "full", **kwargs) -> Callable:
  """`jax.checkpoint(fn)` with the named policy (kwargs as in `remat_policy`)."""
  return jax.checkpoint(fn, policy=remat_policy(name, **kwargs))
