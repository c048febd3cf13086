"""Error texts for the log and for API clients: SQL and URL passwords stay out of responses."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from mlp_orchestration.errors import ModelLoadError
from mlp_orchestration.serving.error_text import client_summary, hide_passwords, log_text


def failed_query(tmp_path: Path) -> sa.exc.OperationalError:
    """Run a query against a table that does not exist in a real SQLite database."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT * FROM routing_config WHERE model = :m"), {"m": "s3cret"})
    except sa.exc.OperationalError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("the query did not fail")


def test_summary_leaves_out_sql(tmp_path: Path) -> None:
    error = failed_query(tmp_path)
    summary = client_summary(error)
    assert summary == "OperationalError: no such table: routing_config"


def test_log_text_keeps_sql(tmp_path: Path) -> None:
    text = log_text(failed_query(tmp_path))
    assert text.startswith("OperationalError: (sqlite3.OperationalError) no such table")
    assert "[SQL: SELECT * FROM routing_config WHERE model = ?]" in text
    assert "s3cret" in text


def test_summary_keeps_first_driver_line() -> None:
    driver = Exception('column "evidence" does not exist\nLINE 1: SELECT evidence FROM x')
    error = sa.exc.ProgrammingError("SELECT evidence FROM x", {}, driver)
    assert client_summary(error) == 'Exception: column "evidence" does not exist'


def test_summary_of_wrapped_sql_text() -> None:
    error = ModelLoadError(
        "cannot read version 3: (sqlite3.OperationalError) database is locked\n"
        "[SQL: UPDATE model_versions SET x = ?]\n[parameters: ('s3cret',)]"
    )
    assert client_summary(error) == (
        "cannot read version 3: (sqlite3.OperationalError) database is locked"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cannot download fraud version 3 from postgresql://mlp:s3cret@db:5432/mlflow: down",
            "cannot download fraud version 3 from postgresql://mlp:***@db:5432/mlflow: down",
        ),
        ("at redis://:s3cret@cache:6379/0.", "at redis://:***@cache:6379/0."),
        ("sqlite:////tmp/warehouse.db is locked", "sqlite:////tmp/warehouse.db is locked"),
        ("http://user@host/x has no password", "http://user@host/x has no password"),
        (
            "store at postgresql://alice@127.0.0.1/db?password=s3cret failed",
            "store at postgresql://alice@127.0.0.1/db?password=*** failed",
        ),
    ],
)
def test_url_passwords_hidden(text: str, expected: str) -> None:
    assert hide_passwords(text) == expected
    error = ModelLoadError(text)
    assert "s3cret" not in client_summary(error)
    assert "s3cret" not in log_text(error)


def test_long_summary_cut() -> None:
    summary = client_summary(ModelLoadError("x" * 1000))
    assert len(summary) == 303
    assert summary.endswith("...")
