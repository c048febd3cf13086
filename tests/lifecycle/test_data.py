"""Dataset loading: verification, the OpenML download path, and the idempotent warehouse load."""

from __future__ import annotations

import http.server
import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from mlp_orchestration.data import ulb
from mlp_orchestration.data.ingest import ingest_ulb
from mlp_orchestration.errors import DataUnavailableError, DataVerificationError
from mlp_orchestration.settings import get_settings
from mlp_orchestration.warehouse import dataset_loads, get_engine, transactions


def _write_copy(frame: pd.DataFrame, folder: Path) -> Path:
    path = folder / ulb.DATASET / ulb.FILE_NAME
    path.parent.mkdir(parents=True)
    frame.to_parquet(path, index=False)
    return path


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


@pytest.fixture
def own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("MLP_DATA_DIR", str(folder))
    return folder


def test_truncated_copy_rejected_and_nothing_written(ulb_frame, own_data_dir):
    _write_copy(ulb_frame.head(1000), own_data_dir)
    settings = get_settings()
    engine = get_engine(settings.warehouse_url)
    with pytest.raises(DataVerificationError, match=r"1,000 rows instead of 284,807") as error:
        ingest_ulb(settings, engine)
    assert "$MLP_DATA_DIR/ulb-creditcard-fraud/" in str(error.value)
    assert "OpenML dataset 1597" in str(error.value)
    assert _count(engine, transactions) == 0
    assert _count(engine, dataset_loads) == 0


def test_altered_value_rejected_by_checksum(ulb_frame, own_data_dir):
    altered = ulb_frame.copy()
    altered.loc[1234, "V7"] += 0.001
    _write_copy(altered, own_data_dir)
    settings = get_settings()
    with pytest.raises(DataVerificationError, match=r"right shape but different values"):
        ingest_ulb(settings, get_engine(settings.warehouse_url))
    assert _count(get_engine(settings.warehouse_url), transactions) == 0


def test_missing_column_rejected(ulb_frame, own_data_dir):
    _write_copy(ulb_frame.drop(columns=["V5"]), own_data_dir)
    with pytest.raises(DataVerificationError, match=r"missing \['V5'\]"):
        ulb.load(get_settings())


def test_unreadable_copy_rejected(own_data_dir):
    path = own_data_dir / ulb.DATASET / ulb.FILE_NAME
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet")
    with pytest.raises(DataVerificationError, match=r"is not a readable Parquet file"):
        ulb.load(get_settings())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _OpenMlStandIn:
    """Serves an OpenML-shaped description and data files on loopback."""

    def __init__(self, files: dict[str, bytes], description: dict) -> None:
        self.files = {"/api/v1/json/data/1597": json.dumps(description).encode(), **files}
        self.requests: list[str] = []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                stand_in.requests.append(self.path)
                body = stand_in.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _OpenMlStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def openml(ulb_frame, monkeypatch) -> Iterator[_OpenMlStandIn]:
    # OpenML serves the label as a nominal attribute; the loader must cast it back.
    served = ulb_frame.copy()
    served["Class"] = served["Class"].astype(str).astype("category")
    buffer = io.BytesIO()
    served.to_parquet(buffer, index=False)
    with _OpenMlStandIn({"/data/creditcard.pq": buffer.getvalue()}, {}) as stand_in:
        stand_in.files["/api/v1/json/data/1597"] = json.dumps(
            {
                "data_set_description": {
                    "id": "1597",
                    "name": "creditcard",
                    "parquet_url": f"{stand_in.url}/data/creditcard.pq",
                }
            }
        ).encode()
        monkeypatch.setenv("MLP_OPENML_URL", stand_in.url)
        yield stand_in


def test_download_verified_and_cached(openml, own_data_dir):
    loaded = ulb.load(get_settings())
    assert loaded.checksum == ulb.EXPECTED_CHECKSUM
    assert loaded.source.endswith("/data/creditcard.pq")
    cached = own_data_dir / ulb.DATASET / ulb.FILE_NAME
    assert cached.is_file()
    assert ulb.load(get_settings()).source == str(cached)
    assert openml.requests.count("/data/creditcard.pq") == 1


def test_truncated_arff_download_rejected_and_not_cached(ulb_frame, own_data_dir, monkeypatch):
    head = ulb_frame.head(50)
    lines = ["% truncated copy", "@RELATION creditcard"]
    lines += [f"@ATTRIBUTE '{c}' NUMERIC" for c in ulb.COLUMNS[:-1]]
    lines += ["@ATTRIBUTE 'Class' {'0','1'}", "@DATA"]
    lines += [
        ",".join(repr(float(v)) for v in row[:-1]) + f",'{int(row[-1])}'"
        for row in head.itertuples(index=False)
    ]
    arff = "\n".join(lines).encode()
    with _OpenMlStandIn({"/data/creditcard.arff": arff}, {}) as stand_in:
        stand_in.files["/api/v1/json/data/1597"] = json.dumps(
            {
                "data_set_description": {
                    "name": "creditcard",
                    "url": f"{stand_in.url}/data/creditcard.arff",
                }
            }
        ).encode()
        monkeypatch.setenv("MLP_OPENML_URL", stand_in.url)
        with pytest.raises(DataVerificationError, match=r"50 rows instead of 284,807"):
            ulb.load(get_settings())
    assert not (own_data_dir / ulb.DATASET / ulb.FILE_NAME).exists()


def test_unreachable_source_names_both_fixes(own_data_dir, monkeypatch):
    monkeypatch.setenv("MLP_OPENML_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("MLP_DOWNLOAD_TIMEOUT_S", "2")
    with pytest.raises(DataUnavailableError, match=r"OpenML could not be reached") as error:
        ulb.load(get_settings())
    message = str(error.value)
    assert "copy creditcard.parquet into" in message
    assert "allow network access to OpenML" in message
    assert not own_data_dir.exists()


def test_ingest_is_idempotent(settings):
    engine = get_engine(settings.warehouse_url)
    first = ingest_ulb(settings, engine)
    second = ingest_ulb(settings, engine)
    assert first.inserted == 284_807
    assert second.inserted == 0
    assert _count(engine, transactions) == 284_807
    with engine.connect() as conn:
        frauds = conn.execute(sa.select(sa.func.sum(transactions.c.Class))).scalar()
        last = conn.execute(
            sa.select(transactions.c.event_time).where(transactions.c.transaction_id == 284_806)
        ).scalar()
    assert frauds == 492
    assert last.isoformat() == "2013-09-02T23:59:52+00:00"


def test_loaded_warehouse_needs_no_dataset_copy(settings, monkeypatch, tmp_path):
    engine = get_engine(settings.warehouse_url)
    ingest_ulb(settings, engine)
    monkeypatch.setenv("MLP_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("MLP_OPENML_URL", f"http://127.0.0.1:{_free_port()}")
    again = ingest_ulb(get_settings(), engine)
    assert again.inserted == 0
    assert again.rows == 284_807
    assert again.positives == 492
    assert again.first_event == "2013-09-01T00:00:00+00:00"
    assert again.last_event == "2013-09-02T23:59:52+00:00"


@pytest.mark.postgres
def test_concurrent_first_loads_both_succeed(postgres_url, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("MLP_DATABASE_URL", postgres_url)
    settings = get_settings()
    engine = get_engine(settings.warehouse_url)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: ingest_ulb(settings, engine), range(2)))
    assert sorted(r.inserted for r in results) == [0, 284_807]
    assert _count(engine, transactions) == 284_807


def test_changed_start_time_rejected(settings, monkeypatch):
    engine = get_engine(settings.warehouse_url)
    ingest_ulb(settings, engine)
    monkeypatch.setenv("MLP_ULB_START", "2020-01-01T00:00:00Z")
    with pytest.raises(DataVerificationError, match=r"MLP_ULB_START now gives"):
        ingest_ulb(get_settings(), engine)
    assert _count(engine, transactions) == 284_807
