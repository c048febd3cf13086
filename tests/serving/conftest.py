"""Session fixtures: a real MLflow SQLite store with small LightGBM models on real ULB rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import pandas as pd
import pytest

from mlp_orchestration.data import ulb
from mlp_orchestration.settings import Settings, get_settings

from .helpers import (
    FEATURES,
    LiveServer,
    native_file_of,
    register_booster,
    service_settings,
    train_booster,
    write_routing,
)

SLICE_ROWS = 20_000


@dataclass(frozen=True)
class Registered:
    """Model versions in the session's MLflow store, with the boosters behind them."""

    settings: Settings
    frame: pd.DataFrame
    champion: str
    challenger: str
    shadow: str
    corrupt: str
    boosters: dict[str, lgb.Booster]


@pytest.fixture(scope="session")
def ulb_rows() -> pd.DataFrame:
    path = ulb.local_path(get_settings())
    if not path.is_file():
        pytest.skip(f"the ULB dataset is not at {path}; set MLP_DATA_DIR")
    frame = pd.read_parquet(path, columns=[*FEATURES, "Class"])
    return frame.iloc[:SLICE_ROWS].reset_index(drop=True)


@pytest.fixture(scope="session")
def registered(tmp_path_factory: pytest.TempPathFactory, ulb_rows: pd.DataFrame) -> Registered:
    home = tmp_path_factory.mktemp("mlflow-home")
    settings = service_settings(Settings(home=home), home)
    boosters = {
        "champion": train_booster(ulb_rows, rounds=30, seed=1),
        "challenger": train_booster(ulb_rows, rounds=40, seed=2, leaves=7),
        "shadow": train_booster(ulb_rows, rounds=20, seed=3, leaves=31),
    }
    versions = {
        role: register_booster(settings, booster, threshold=0.5)
        for role, booster in boosters.items()
    }
    corrupt = register_booster(settings, boosters["champion"], threshold=0.5)
    native_file_of(settings, corrupt).write_text("this is not a LightGBM model\n")
    return Registered(
        settings=settings,
        frame=ulb_rows,
        champion=versions["champion"],
        challenger=versions["challenger"],
        shadow=versions["shadow"],
        corrupt=corrupt,
        boosters={versions[role]: booster for role, booster in boosters.items()},
    )


@pytest.fixture
def serving_settings(registered: Registered, tmp_path: Path) -> Settings:
    """Settings of a fresh service home whose routing serves the champion."""
    settings = service_settings(registered.settings, tmp_path)
    write_routing(settings, champion_version=registered.champion)
    return settings


@pytest.fixture
def server(serving_settings: Settings) -> Iterator[LiveServer]:
    live = LiveServer(serving_settings).start()
    yield live
    live.stop()
