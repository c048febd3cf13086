"""Columns each dataset provides once loaded, so specs can be checked before anything runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSchema:
    entity_key: str
    event_time: str
    label: str
    features: tuple[str, ...]


DATASET_SCHEMAS: dict[str, DatasetSchema] = {
    "ulb-creditcard-fraud": DatasetSchema(
        entity_key="transaction_id",
        event_time="event_time",
        label="Class",
        features=(*(f"V{i}" for i in range(1, 29)), "Amount"),
    ),
}
