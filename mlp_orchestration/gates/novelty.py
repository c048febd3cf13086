"""Novelty gate: a candidate identical to the champion has nothing to roll out.

Retraining on the same snapshot with the same parameters reproduces the champion's trees bit for
bit (training is deterministic); registering it as challenger would only replay the champion
through shadow and canary stages.
"""

from __future__ import annotations

from mlp_orchestration.gates.base import GateCheck, GateContext, GateResult


def novelty_gate(context: GateContext) -> GateResult:
    candidate_hash = context.extra.get("candidate_model_sha256")
    champion_hash = context.extra.get("champion_model_sha256")
    if context.champion_version is None:
        return GateResult("novelty", True, [], ["no champion yet: nothing to compare with"])
    if not candidate_hash or not champion_hash:
        return GateResult(
            "novelty", True, [], ["a model_sha256 tag is missing, so identity was not checked"]
        )
    identical = candidate_hash == champion_hash
    message = (
        f"novelty FAILED: candidate v{context.candidate.version} is identical to champion "
        f"v{context.champion_version} (model sha256 {candidate_hash[:12]}); train on newer data "
        "or change the parameters"
        if identical
        else f"novelty passed: the model differs from champion v{context.champion_version}'s"
    )
    check = GateCheck(
        "differs_from_champion", float(not identical), 1.0, ">=", not identical, message
    )
    return GateResult("novelty", not identical, [check])
