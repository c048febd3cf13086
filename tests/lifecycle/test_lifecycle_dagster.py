"""The whole lifecycle through a real Dagster instance and a real MLflow SQLite store.

The tests run on a twelve-hour slice of the first day, so they stay quick. A first run promotes a
champion and a later cut-off produces a challenger. A spec with unreachable floors is blocked by
its gates without touching the registry's aliases or the routing config.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from mlp_orchestration import keys, registry
from mlp_orchestration.cli import main
from mlp_orchestration.instance import open_instance
from mlp_orchestration.lifecycle import run_lifecycle
from mlp_orchestration.routing import RoutingStore
from mlp_orchestration.settings import get_settings
from mlp_orchestration.spec import load_spec_file, parse_as_of
from mlp_orchestration.warehouse import alert_log, get_engine
from tests.conftest import FRAUD_SPEC

pytestmark = pytest.mark.slow


def _write_spec(folder: Path, **floors: float) -> Path:
    raw = yaml.safe_load(FRAUD_SPEC.read_text())
    raw["windows"] = {
        "as_of": "2013-09-01T12:00:00Z",
        "training": "6h",
        "validation": "3h",
        "holdout": "3h",
    }
    raw["gates"]["performance"].update(floors)
    raw["validation"]["min_rows"] = 1000
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fraud.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def lifecycle_env(tmp_path, monkeypatch):
    specs = tmp_path / "specs"
    _write_spec(specs, min_pr_auc=0.3, min_roc_auc=0.8)
    monkeypatch.setenv("MLP_SPECS_DIR", str(specs))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster-home"))
    monkeypatch.setenv("MLP_ACTOR", "ci-tester")
    return specs


def test_lifecycle_promotes_then_gates_later_candidate(lifecycle_env, capsys):
    settings = get_settings()
    spec = load_spec_file(lifecycle_env / "fraud.yaml")
    instance = open_instance(settings)

    first = run_lifecycle(settings, instance, spec)
    assert first.success
    assert first.rows_loaded == 284_807
    assert all(first.checks.values()), first.checks
    assert len(first.checks) == 9
    assert first.promotion.action == "champion"
    assert first.promotion.routing_version == 1

    client = registry.configure(settings)
    assert registry.alias_version(client, "fraud", registry.CHAMPION) == first.candidate.version
    routing = RoutingStore(get_engine(settings.warehouse_url)).current("fraud")
    assert routing.champion_version == first.candidate.version
    assert routing.actor == "ci-tester"
    assert routing.evidence["snapshot_hash"] == first.snapshot_hash
    assert routing.evidence["gate_report"]["verdict"] == "passed"
    tags = registry.get_version(client, "fraud", first.candidate.version).tags
    assert tags["snapshot_hash"] == first.snapshot_hash
    assert tags["gate_verdict"] == "passed"
    assert Path(first.gate_report.report_path).is_file()

    runs = instance.get_runs()
    assert runs[0].job_name == keys.job_name("fraud", keys.LIFECYCLE)
    materialization = instance.get_latest_materialization_event(
        keys.asset_key("fraud", keys.CANDIDATE_MODEL)
    )
    metadata = materialization.asset_materialization.metadata
    assert metadata["model_version"].value == first.candidate.version
    assert metadata["mlflow_run"].value.startswith(settings.mlflow_ui_url)

    later = run_lifecycle(
        settings, instance, spec, action=keys.RETRAIN, as_of=parse_as_of("2013-09-01T15:00:00Z")
    )
    with get_engine(settings.warehouse_url).connect() as conn:
        kinds = conn.execute(sa.select(alert_log.c.kind).order_by(alert_log.c.id)).scalars().all()
    assert kinds[-2:] == ["retrain_started", "retrain_finished"]
    assert later.candidate.version != first.candidate.version
    assert later.snapshot_hash != first.snapshot_hash
    assert later.gate_report.champion_version == first.candidate.version
    if later.gate_report.passed:
        assert later.promotion.action == "challenger"
        assert (
            registry.alias_version(client, "fraud", registry.CHALLENGER) == later.candidate.version
        )
    assert registry.alias_version(client, "fraud", registry.CHAMPION) == first.candidate.version

    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["models"]["fraud"]
    assert status["champion_version"] == first.candidate.version
    assert status["routing_champion_version"] == first.candidate.version
    assert status["routing_version"] == 1
    assert status["snapshot_hash"] == first.snapshot_hash
    assert status["holdout"]["pr_auc"] == pytest.approx(
        first.candidate.metrics["holdout_pr_auc"], abs=1e-6
    )


def test_failed_gate_blocks_promotion(lifecycle_env):
    _write_spec(lifecycle_env, min_pr_auc=0.999, min_roc_auc=0.8)
    settings = get_settings()
    spec = load_spec_file(lifecycle_env / "fraud.yaml")
    result = run_lifecycle(settings, open_instance(settings), spec)

    assert not result.success
    assert result.checks["all_gates_passed"] is False
    assert result.promotion is None
    assert result.gate_report.verdicts()["performance"] == "failed"
    assert any(
        "holdout PR-AUC" in f["message"] and "0.9990" in f["message"]
        for f in result.gate_report.failures
    )
    client = registry.configure(settings)
    assert registry.alias_version(client, "fraud", registry.CHAMPION) is None
    assert RoutingStore(get_engine(settings.warehouse_url)).current("fraud") is None
    tags = registry.get_version(client, "fraud", result.candidate.version).tags
    assert tags["gate_verdict"] == "failed"
    assert tags["gate.performance"] == "failed"
    with get_engine(settings.warehouse_url).connect() as conn:
        alerts = conn.execute(sa.select(alert_log.c.kind, alert_log.c.status, alert_log.c.text))
        alerts = alerts.all()
    assert [(kind, status) for kind, status, _ in alerts] == [("gate_failed", "logged")]
    assert "holdout_pr_auc" in alerts[0].text


def test_lifecycle_cli_rejects_bad_as_of(lifecycle_env, capsys):
    assert main(["lifecycle", "run", "fraud", "--as-of", "tomorrow"]) == 2
    assert "--as-of 'tomorrow' is not an ISO 8601 time" in capsys.readouterr().err
