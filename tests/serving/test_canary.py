"""Canary assignment is sticky, monotone in the share and close to the configured share."""

from __future__ import annotations

import pytest

from mlp_orchestration.serving.canary import CANARY, CHAMPION, bucket, canary_salt, choose_arm

IDS = [str(i) for i in range(100_000)]
SALT = canary_salt("fraud", "7")


@pytest.mark.parametrize("share", [0.01, 0.05, 0.25, 0.5, 0.9])
def test_share_within_tolerance(share: float) -> None:
    on_canary = sum(choose_arm(i, salt=SALT, share=share) == CANARY for i in IDS)
    assert abs(on_canary / len(IDS) - share) <= 0.003


def test_same_entity_same_arm() -> None:
    first = [choose_arm(i, salt=SALT, share=0.3) for i in IDS[:5000]]
    again = [choose_arm(i, salt=SALT, share=0.3) for i in IDS[:5000]]
    assert first == again


def test_raising_share_only_adds_entities() -> None:
    shares = [0.05, 0.25, 0.5, 1.0]
    previous: set[str] = set()
    for share in shares:
        current = {i for i in IDS if choose_arm(i, salt=SALT, share=share) == CANARY}
        assert previous <= current
        previous = current
    assert len(previous) == len(IDS)


def test_new_canary_version_samples_other_entities() -> None:
    first = {i for i in IDS if choose_arm(i, salt=canary_salt("fraud", "7"), share=0.1) == CANARY}
    second = {i for i in IDS if choose_arm(i, salt=canary_salt("fraud", "8"), share=0.1) == CANARY}
    overlap = len(first & second) / len(first)
    # Independent 10% samples share about 10% of their members.
    assert 0.07 < overlap < 0.13


def test_zero_share_is_all_champion() -> None:
    assert {choose_arm(i, salt=SALT, share=0.0) for i in IDS[:1000]} == {CHAMPION}


def test_bucket_range() -> None:
    values = [bucket(i, SALT) for i in IDS[:10_000]]
    assert min(values) >= 0.0
    assert max(values) < 1.0


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_share_outside_range_rejected(share: float) -> None:
    with pytest.raises(ValueError, match="outside 0 to 1"):
        choose_arm("1", salt=SALT, share=share)
