"""CXL-aware placement of CPU-offloaded fine-tuning state (Liaw & Chen, "Analysis and Optimized CXL-Attached
Memory Allocation for Long-Context LLM Fine-Tuning", 2025), a naive baseline, and a cost model of the step.

With CPU offloading (ZeRO-Offload style) the host holds fp32 master params, gradients and Adam moments, which the
CPU optimizer step streams through every step, plus bulk data the GPU moves by DMA (offloaded activation
checkpoints, the half-precision params sent back). The paper's findings that this planner encodes:
  - the optimizer step is latency-sensitive: with its data in CXL memory (~2x DRAM latency) it slows down ~4x
    once the data outgrows the caches, so latency-critical tensors go to local DRAM first (latency-first greedy);
  - DMA transfers see DRAM-like bandwidth from CXL, so latency-tolerant bulk data goes to CXL;
  - several add-in cards (AICs) striped together avoid bandwidth contention on one card.
`plan_naive` interleaves every buffer uniformly over all host nodes (`numactl --interleave`), the baseline the
paper improves on by up to 21%.

Cost model (`predict_step`), per training step:
  optimizer = max( sum_t B_t * L_t / M ,  max_t B_t / W_t )     Little's law over the CPU's M outstanding bytes
              (B_t: bytes the optimizer streams from tier t, L_t: its load-to-use latency, W_t: its CPU bandwidth)
  transfer  = max( D / P ,  max_t D_t / R_t )                    DMA from tiers in parallel, capped by the link P
  step      = compute + max(0, transfer - overlap * compute) + optimizer
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from lcjax.errors import CapacityError, ConfigError
from lcjax.memory.tiers import Tier

# Per role: is it latency-critical (read by the CPU optimizer step), bytes the optimizer streams per byte held
# (reads + writes), and bytes DMA'd to/from the GPU per byte held per step.
ROLES = {
    "master_params": (True, 2.0, 0.0),     # read and written by the optimizer
    "optimizer_state": (True, 2.0, 0.0),   # Adam m and v: read and written
    "grads": (True, 1.0, 1.0),             # arrive by DMA (D2H), read once by the optimizer
    "activations": (False, 0.0, 2.0),      # checkpoints: offloaded in forward (D2H), reloaded in backward (H2D)
    "params_half": (False, 1.0, 1.0),      # half-precision copy: written by the optimizer, sent H2D
}


@dataclasses.dataclass(frozen=True)
class Buffer:
  """A host-resident buffer: name, size in bytes and role (a key of ROLES)."""

  name: str
  nbytes: int
  role: str

  def __post_init__(self):
    if self.role not in ROLES:
      raise ConfigError(f"buffer {self.name!r}: unknown role {self.role!r}; accepted: {', '.join(ROLES)}")
    if self.nbytes < 0:
      raise ConfigError(f"buffer {self.name!r}: nbytes must be >= 0, got {self.nbytes}")

  @property
  def latency_critical(self) -> bool:
    return ROLES[self.role][0]

  @property
  def cpu_passes(self) -> float:
    return ROLES[self.role][1]

  @property
  def dma_passes(self) -> float:
    return ROLES[self.role][2]


@dataclasses.dataclass(frozen=True)
class Workload:
  """Step parameters: GPU compute seconds, the CPU's outstanding miss bytes (cores x misses in flight x line),
  the host<->GPU link bandwidth, and the fraction of compute that DMA overlaps."""

  compute_s: float = 0.0
  outstanding_bytes: float = 16 * 10 * 64
  link_bw: float = 25e9
  overlap: float = 0.0


@dataclasses.dataclass(frozen=True)
class Plan:
  """Bytes of each buffer on each tier: {buffer name: {tier name: bytes}} and the tiers planned over."""

  shares: dict
  tiers: tuple[Tier, ...]
  strategy: str

  def bytes_on(self, tier_name: str) -> int:
    """Total bytes placed on a tier."""
    return sum(s.get(tier_name, 0) for s in self.shares.values())


def _check(buffers: Sequence[Buffer], tiers: Sequence[Tier]) -> None:
  names = [b.name for b in buffers]
  if len(set(names)) != len(names):
    raise ConfigError(f"buffer names must be unique, got {names}")
  need, have = sum(b.nbytes for b in buffers), sum(t.capacity_bytes for t in tiers)
  if need > have:
    sizes = ", ".join(f"{b.name}={b.nbytes / 2**30:.1f}" for b in buffers)
    caps = ", ".join(f"{t.name}={t.capacity_bytes / 2**30:.1f}" for t in tiers)
    raise CapacityError(f"{need / 2**30:.1f} GiB of buffers ({sizes} GiB) exceed the {have / 2**30:.1f} GiB of the "
                        f"tiers ({caps} GiB)")


def _stripe(nbytes: int, tiers: Sequence[Tier], free: dict) -> dict:
  """Splits `nbytes` evenly over `tiers` (water-filling: a full tier's share goes to the others)."""
  out: dict[str, int] = {}
  left, open_tiers = nbytes, [t for t in tiers if free[t.name] > 0]
  while left > 0 and open_tiers:
    share = -(-left // len(open_tiers))
    for t in list(open_tiers):
      take = min(share, free[t.name], left)
      out[t.name] = out.get(t.name, 0) + take
      free[t.name] -= take
      left -= take
      if free[t.name] == 0:
        open_tiers.remove(t)
  if left > 0:
    raise CapacityError(f"{left} bytes do not fit the tiers {[t.name for t in tiers]}")
  return out


def _merge(a: dict, b: dict) -> dict:
  return {k: a.get(k, 0) + b.get(k, 0) for k in set(a) | set(b) if a.get(k, 0) + b.get(k, 0)}


def plan_cxl_aware(buffers: Sequence[Buffer], tiers: Sequence[Tier]) -> Plan:
  """Latency-first greedy placement.

  1. Latency-critical buffers, most optimizer traffic per byte first, fill local DRAM (`kind == "host"`).
  2. What does not fit is striped over the CXL tiers.
  3. Latency-tolerant bulk data is striped over the CXL tiers (equal shares per card), overflowing to DRAM.
  Raises:
    CapacityError: the buffers exceed the tiers' total capacity.
  """
  _check(buffers, tiers)
  dram = [t for t in tiers if t.kind == "host"]
  cxl = [t for t in tiers if t.kind == "cxl"]
  free = {t.name: t.capacity_bytes for t in tiers}
  shares: dict[str, dict] = {b.name: {} for b in buffers}
  critical = sorted((b for b in buffers if b.latency_critical), key=lambda b: -b.cpu_passes)
  for b in critical:
    in_dram = _stripe(min(b.nbytes, sum(free[t.name] for t in dram)), dram, free) if dram else {}
    rest = b.nbytes - sum(in_dram.values())
    shares[b.name] = _merge(in_dram, _stripe(rest, cxl or dram, free) if rest else {})
  for b in (b for b in buffers if not b.latency_critical):
    on_cxl = _stripe(min(b.nbytes, sum(free[t.name] for t in cxl)), cxl, free) if cxl else {}
    rest = b.nbytes - sum(on_cxl.values())
    shares[b.name] = _merge(on_cxl, _stripe(rest, dram, free) if rest else {})
  return Plan(shares, tuple(tiers), "cxl_aware")


def plan_naive(buffers: Sequence[Buffer], tiers: Sequence[Tier]) -> Plan:
  """Every buffer interleaved page by page over all host tiers (equal shares, water-filling when one is full)."""
  _check(buffers, tiers)
  host = [t for t in tiers if t.kind in ("host", "cxl")]
  free = {t.name: t.capacity_bytes for t in tiers}
  return Plan({b.name: _stripe(b.nbytes, host, free) for b in buffers}, tuple(tiers), "naive_interleave")


@dataclasses.dataclass(frozen=True)
class StepPrediction:
  """Predicted seconds of one training step and its parts."""

  optimizer_s: float
  transfer_s: float
  compute_s: float
  total_s: float


def predict_step(plan: Plan, buffers: Sequence[Buffer], workload: Workload = Workload()) -> StepPrediction:
  """The cost model in the module docstring applied to a plan."""
  tiers = {t.name: t for t in plan.tiers}
  cpu_bytes = {n: 0.0 for n in tiers}
  dma_bytes = {n: 0.0 for n in tiers}
  for b in buffers:
    for name, nbytes in plan.shares[b.name].items():
      cpu_bytes[name] += b.cpu_passes * nbytes
      dma_bytes[name] += b.dma_passes * nbytes
  latency_bound = sum(cpu_bytes[n] * tiers[n].access_latency_s for n in tiers) / workload.outstanding_bytes
  bandwidth_bound = max(cpu_bytes[n] / tiers[n].cpu_bw for n in tiers)
  optimizer = max(latency_bound, bandwidth_bound)
  transfer = max(sum(dma_bytes.values()) / workload.link_bw,
                 max(dma_bytes[n] / tiers[n].to_device_bw for n in tiers))
  exposed = max(0.0, transfer - workload.overlap * workload.compute_s)
  return StepPrediction(optimizer, transfer, workload.compute_s, workload.compute_s + exposed + optimizer)


def finetune_buffers(params: float, layers: int, dim: int, context: int, batch: int = 1) -> list[Buffer]:
  """Host buffers of CPU-offloaded mixed-precision Adam fine-tuning with offloaded activation checkpoints.

  fp32 master params (4 B/param), fp32 grads (4), Adam m and v (8), bf16 params sent back (2), and one bf16
  checkpoint [B, T, D] per layer.
  """
  p = int(params)
  return [Buffer("master_params", 4 * p, "master_params"), Buffer("grads", 4 * p, "grads"),
          Buffer("adam_moments", 8 * p, "optimizer_state"), Buffer("params_bf16", 2 * p, "params_half"),
          Buffer("activation_checkpoints", 2 * layers * batch * context * dim, "activations")]


def paper_scenario(aics: int = 1, dram_gib: float = 128, aic_gib: float = 128) -> list[Tier]:
  """A client-class host like the paper's: local DDR5 and `aics` CXL memory expander cards.

  DRAM: ~100 ns load-to-use, 80 GB/s; each AIC (a CXL x8 card): ~250 ns (the paper reports 170-250 ns vs
  80-140 ns for DRAM), 20 GB/s for the CPU and 12 GB/s of DMA toward the GPU, below the PCIe 4.0 x16 GPU link's
  25 GB/s (`Workload.link_bw`), so one card alone limits bulk transfers (assumed figures; pass measured tiers).
  """
  gib = 2**30
  tiers = [Tier("dram", "host", int(dram_gib * gib), 25e9, 25e9, 80e9, 10e-6, 100e-9)]
  for i in range(aics):
    name = "cxl" if aics == 1 else f"cxl{i}"
    tiers.append(Tier(name, "cxl", int(aic_gib * gib), 12e9, 12e9, 20e9, 10e-6, 250e-9, None, (i + 1,)))
  return tiers
