"""Datasets: loading public data, verifying it and writing it to the warehouse."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from mlp_orchestration.data.ingest import IngestResult, ingest_ulb
from mlp_orchestration.settings import Settings

# Dataset name in a spec -> function that loads it into the warehouse idempotently.
INGESTERS: dict[str, Callable[[Settings, Engine], IngestResult]] = {
    "ulb-creditcard-fraud": ingest_ulb,
}

__all__ = ["INGESTERS", "IngestResult"]
