"""A warehouse loaded once per module, and a candidate trained on the fraud spec's windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlp_orchestration.data.ingest import ingest_ulb
from mlp_orchestration.features import build_snapshot, split_frame, store_snapshot
from mlp_orchestration.settings import Settings
from mlp_orchestration.training import CandidateModel, train_candidate
from mlp_orchestration.warehouse import get_engine
from tests.conftest import data_dir


@pytest.fixture(scope="module")
def loaded_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home: Path = tmp_path_factory.mktemp("loaded-home")
    settings = Settings(MLP_HOME=str(home), MLP_DATA_DIR=str(data_dir()))
    ingest_ulb(settings, get_engine(settings.warehouse_url))
    return settings


@pytest.fixture(scope="module")
def candidate(loaded_settings: Settings) -> CandidateModel:
    from mlp_orchestration.spec import load_spec_file
    from tests.conftest import FRAUD_SPEC

    spec = load_spec_file(FRAUD_SPEC)
    engine = get_engine(loaded_settings.warehouse_url)
    frame, bounds = build_snapshot(engine, spec)
    record = store_snapshot(loaded_settings, engine, spec, frame, bounds)
    return train_candidate(loaded_settings, spec, record, split_frame(frame, spec, bounds))
