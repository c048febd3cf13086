"""The input contract of a registered model version: each feature's range and missing values.

Training records the contract of the spec it trained under as the version tag
``input_contract``, so every served version (champion, canary or shadow) is checked against its
own spec rather than the spec file in force when it is served. A feature's ``min`` and ``max``
are inclusive bounds, as in training's range check. A null (missing value) is allowed only for a
feature whose ``max_missing_rate`` is above 0, because one request cannot measure a rate.

The check runs on the feature vector the vectorizer already built (null is NaN there), with
bounds precomputed as numpy arrays, so a valid record costs one or two array comparisons.
Versions registered before training recorded a contract have none and are not checked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlp_orchestration.serving.errors import InvalidRequestError

if TYPE_CHECKING:
    from mlp_orchestration.spec import FeatureSpec

INPUT_CONTRACT_TAG = "input_contract"
CONTRACT_FORMAT = 1
_MAX_NAMES_LISTED = 20


class InputContractError(InvalidRequestError):
    """A record's feature values are outside the input contract of the version that scores it."""


class ContractFormatError(ValueError):
    """An ``input_contract`` tag is not a contract this service can read."""


def contract_tag_value(features: Sequence[FeatureSpec]) -> str:
    """Serialize the spec features' bounds and missing-value limits as the tag's JSON text."""
    document = {
        "format": CONTRACT_FORMAT,
        "features": [
            {
                "name": feature.name,
                "min": feature.min,
                "max": feature.max,
                "max_missing_rate": feature.max_missing_rate,
            }
            for feature in features
        ],
    }
    return json.dumps(document, separators=(",", ":"))


@dataclass(frozen=True)
class InputContract:
    """Bounds and null rules of one model version, as arrays in the model's feature order."""

    model: str
    version: str
    feature_names: tuple[str, ...]
    lower: np.ndarray  # -inf where the feature has no min
    upper: np.ndarray  # inf where the feature has no max
    nullable: np.ndarray
    has_min: bool
    has_max: bool

    @classmethod
    def from_tag(
        cls, text: str, *, model: str, version: str, feature_names: Sequence[str]
    ) -> InputContract:
        """Parse an ``input_contract`` tag for a model whose features are ``feature_names``.

        Raises:
            ContractFormatError: the text is not a contract of this format, or its features
                differ from the model's.
        """
        entries = _entries(text)
        names = [entry["name"] for entry in entries]
        if sorted(names) != sorted(feature_names):
            raise ContractFormatError(
                f"its features {_names(names)} differ from the model's {_names(feature_names)}"
            )
        by_name = {entry["name"]: entry for entry in entries}
        width = len(feature_names)
        lower = np.full(width, -np.inf)
        upper = np.full(width, np.inf)
        nullable = np.zeros(width, dtype=bool)
        for i, name in enumerate(feature_names):
            entry = by_name[name]
            # A NaN bound rejects nothing in training's range check, so it is no bound here.
            if entry.get("min") is not None and not math.isnan(entry["min"]):
                lower[i] = entry["min"]
            if entry.get("max") is not None and not math.isnan(entry["max"]):
                upper[i] = entry["max"]
            nullable[i] = entry["max_missing_rate"] > 0
        has_min = bool(np.isfinite(lower).any())
        has_max = bool(np.isfinite(upper).any())
        return cls(model, version, tuple(feature_names), lower, upper, nullable, has_min, has_max)

    def check(self, row: np.ndarray) -> None:
        """Check a feature vector in the model's order, where NaN stands for null.

        Raises:
            InputContractError: naming each value outside its range and each disallowed null.
        """
        # NaN fails every comparison, even with an infinite bound, so one test finds nulls as
        # well as values out of range, and only the sides that have bounds need comparing.
        if self.has_max and self.has_min:
            valid = ((row >= self.lower) & (row <= self.upper)).all()
        elif self.has_max:
            valid = (row <= self.upper).all()
        else:
            valid = (row >= self.lower).all()
        if not valid:
            self._check_slowly(row)

    def _check_slowly(self, row: np.ndarray) -> None:
        outside = np.flatnonzero((row < self.lower) | (row > self.upper))
        nulls = np.flatnonzero(np.isnan(row) & ~self.nullable)
        if outside.size == 0 and nulls.size == 0:
            return
        problems = [
            f"{self.feature_names[i]} is {float(row[i])!r}, outside the allowed range "
            f"{_interval(self.lower[i], self.upper[i])}"
            for i in outside[:_MAX_NAMES_LISTED]
        ]
        if outside.size > _MAX_NAMES_LISTED:
            problems.append(f"{outside.size - _MAX_NAMES_LISTED} more values are out of range")
        if nulls.size:
            names = _names([self.feature_names[i] for i in nulls])
            problems.append(
                f"null for {names}, but this version was trained without missing values for "
                f"{'it' if nulls.size == 1 else 'them'}"
            )
        raise InputContractError(
            f"features do not match the input contract of {self.model} version {self.version}: "
            + "; ".join(problems)
            + ". Send a number within the allowed range for each feature. Null is accepted only "
            "for features the model was trained with missing values for."
        )

    def describe(self) -> list[dict[str, Any]]:
        """List each feature's bounds (null when unbounded) and whether null is accepted."""
        return [
            {
                "name": name,
                "min": None if math.isinf(self.lower[i]) else float(self.lower[i]),
                "max": None if math.isinf(self.upper[i]) else float(self.upper[i]),
                "nullable": bool(self.nullable[i]),
            }
            for i, name in enumerate(self.feature_names)
        ]


def _entries(text: str) -> list[dict[str, Any]]:
    """Return the validated feature entries of a tag's JSON text."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ContractFormatError(f"it is not valid JSON ({exc})") from None
    if type(document) is not dict or document.get("format") != CONTRACT_FORMAT:
        raise ContractFormatError(f"it is not a JSON object with format {CONTRACT_FORMAT}")
    entries = document.get("features")
    if type(entries) is not list or not entries:
        raise ContractFormatError("its features field is not a non-empty array")
    for i, entry in enumerate(entries):
        _check_entry(entry, f"features[{i}]")
    return entries


def _check_entry(entry: Any, where: str) -> None:
    if type(entry) is not dict or type(entry.get("name")) is not str:
        raise ContractFormatError(f"{where} is not an object with a name")
    for key in ("min", "max"):
        value = entry.get(key)
        if value is not None and not _is_number(value):
            raise ContractFormatError(f"{where} {key} {value!r} is not a number or null")
    rate = entry.get("max_missing_rate")
    if not _is_number(rate) or not 0.0 <= rate <= 1.0:
        raise ContractFormatError(f"{where} max_missing_rate {rate!r} is not a number from 0 to 1")


def _is_number(value: Any) -> bool:
    return type(value) is int or type(value) is float


def _interval(low: float, high: float) -> str:
    """Write bounds in interval notation: [0.0, inf) when only a minimum is set."""
    left = "(-inf" if math.isinf(low) and low < 0 else f"[{float(low)!r}"
    right = "inf)" if math.isinf(high) and high > 0 else f"{float(high)!r}]"
    return f"{left}, {right}"


def _names(names: Sequence[str]) -> str:
    listed = ", ".join(names[:_MAX_NAMES_LISTED])
    if len(names) > _MAX_NAMES_LISTED:
        listed += f" ({len(names) - _MAX_NAMES_LISTED} more)"
    return listed
