"""Analytical performance models: the theoretical peak analysis of long-context serving (Fu, 2024)."""

from lcjax.analysis.deployment import DeploymentReport, ModelSpec, analyze
from lcjax.analysis.hardware import HARDWARE, Hardware, hardware

__all__ = ["DeploymentReport", "HARDWARE", "Hardware", "ModelSpec", "analyze", "hardware"]
