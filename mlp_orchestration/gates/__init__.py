"""Gates a candidate must pass before it may become challenger: name to function."""

from __future__ import annotations

from collections.abc import Callable

from mlp_orchestration.gates.base import GateCheck, GateContext, GateResult
from mlp_orchestration.gates.bias import bias_gate
from mlp_orchestration.gates.consistency import consistency_gate
from mlp_orchestration.gates.novelty import novelty_gate
from mlp_orchestration.gates.performance import performance_gate
from mlp_orchestration.gates.segments import segments_gate

Gate = Callable[[GateContext], GateResult]

GATES: dict[str, Gate] = {
    "performance": performance_gate,
    "segments": segments_gate,
    "bias": bias_gate,
    "consistency": consistency_gate,
    "novelty": novelty_gate,
}

__all__ = ["GATES", "Gate", "GateCheck", "GateContext", "GateResult"]
