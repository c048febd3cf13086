"""A monitored world on real ULB rows: a registered champion, its snapshot and a prediction log.

Day 1 (2013-09-01) is the champion's snapshot. The prediction log contains the champion's real
scores for day 2's first three hours in full, and 100 requests of the fourth hour, too few for
a drift verdict. Labels are in for hours 0 and 1 and for half of hour 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from mlp_orchestration.data import ulb
from mlp_orchestration.scoring import NativeModel
from mlp_orchestration.settings import Settings
from mlp_orchestration.warehouse import get_engine
from tests.conftest import data_dir

from .helpers import (
    log_predictions,
    register_champion,
    train_booster,
    with_event_time,
    write_labels,
    write_snapshot,
)

SNAPSHOT_HASH = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
DAY = 86_400
HOUR = 3_600


@dataclass(frozen=True)
class World:
    settings: Settings
    version: str
    booster_threshold: float
    hours: dict[int, pd.DataFrame]


def _hour(frame: pd.DataFrame, hour: int) -> pd.DataFrame:
    start = DAY + hour * HOUR
    return frame[(frame["Time"] >= start) & (frame["Time"] < start + HOUR)]


@pytest.fixture(scope="session")
def ulb_with_time() -> pd.DataFrame:
    path = ulb.local_path(Settings(MLP_DATA_DIR=str(data_dir())))
    if not path.is_file():
        pytest.skip(f"the ULB dataset is not at {path}; set MLP_DATA_DIR")
    return with_event_time(pd.read_parquet(path))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, ulb_with_time: pd.DataFrame) -> World:
    home = tmp_path_factory.mktemp("monitoring-home")
    settings = Settings(**_store_env(home))
    day_one = ulb_with_time[ulb_with_time["Time"] < DAY]
    snapshot = day_one.iloc[::3]
    booster = train_booster(snapshot[snapshot["Time"] < 16 * HOUR])
    write_snapshot(settings, snapshot, snapshot_hash=SNAPSHOT_HASH)
    threshold = 0.5
    version = register_champion(
        settings,
        booster,
        snapshot_hash=SNAPSHOT_HASH,
        as_of="2013-09-02T00:00:00+00:00",
        threshold=threshold,
    )
    model = NativeModel(booster, version=version)
    hours = {hour: _hour(ulb_with_time, hour) for hour in range(3)}
    hours[3] = _hour(ulb_with_time, 3).iloc[:100]
    get_engine(settings.warehouse_url)
    for frame in hours.values():
        log_predictions(settings, frame, model, version=version)
    write_labels(settings, pd.concat([hours[0], hours[1], hours[2].iloc[::2]]))
    return World(settings=settings, version=version, booster_threshold=threshold, hours=hours)


def _store_env(home: Path) -> dict[str, str]:
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI (MLflow 3.17), so a URI derived from
    # MLP_HOME alone could pick up another module's store; each world names its own.
    return {
        "MLP_HOME": str(home),
        "MLP_MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
        "MLP_MLFLOW_REGISTRY_URI": f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
        "MLP_MLFLOW_ARTIFACT_ROOT": (home / "mlflow" / "artifacts").as_uri(),
    }


@pytest.fixture
def world_env(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """Point MLP_HOME and the MLflow stores (and so MlpResource) at the world's for one test."""
    for name, value in _store_env(Path(world.settings.home)).items():
        monkeypatch.setenv(name, value)
    return world
