"""Rollout of a challenger: shadow evaluation, staged canary with guard metrics, promotion.

The routing config history is the rollout's state: a run of SHADOW and CANARY configs for one
candidate version, ended by a PROMOTED or ROLLED_BACK config. Decisions are plain functions
(``decision.decide_stage``, ``guards.GUARDS``, ``shadow.shadow_gate``); ``controller.step_rollout``
reads the stores, decides and records, and both the rollout sensor and ``driver.drive_rollout``
call it.
"""
