"""Sticky canary assignment: which entities a canary version scores.

Each entity id gets a bucket in [0, 1) from a BLAKE2b hash of the id, salted with the model and
the canary version. The entity goes to the canary when its bucket is below the canary share.
For one canary version the bucket never changes, so an entity always lands on the same arm, and
raising the share keeps every entity already on the canary there while adding more. A new
canary version has a new salt, so each canary scores a fresh sample of entities.

The functions are pure, so the rollout code can predict which entities a canary scores.
"""

from __future__ import annotations

import hashlib

CHAMPION = "champion"
CANARY = "canary"
SHADOW = "shadow"

_BUCKET_SCALE = 2.0**-53


def canary_salt(model: str, canary_version: str) -> bytes:
    """Return the hash salt of one canary version of a model."""
    return f"{model}\x00{canary_version}\x00".encode()


def bucket(entity_id: str, salt: bytes) -> float:
    """Map an entity id to a number in [0, 1), uniform over ids and fixed for one salt."""
    digest = hashlib.blake2b(salt + entity_id.encode(), digest_size=8).digest()
    # The top 53 bits give every float in [0, 1) on a 2**-53 grid; 1.0 is impossible.
    return (int.from_bytes(digest, "big") >> 11) * _BUCKET_SCALE


def choose_arm(entity_id: str, *, salt: bytes, share: float) -> str:
    """Return ``CANARY`` for a sticky ``share`` of entity ids and ``CHAMPION`` for the rest.

    Raises:
        ValueError: the share is outside 0 to 1.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"canary share {share!r} is outside 0 to 1")
    if share == 0.0:
        return CHAMPION
    if share == 1.0:
        return CANARY
    return CANARY if bucket(entity_id, salt) < share else CHAMPION
