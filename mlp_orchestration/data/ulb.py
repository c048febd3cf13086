"""The ULB / Worldline card-fraud dataset: fetch, verify, map onto calendar time, load.

The local copy ``$MLP_DATA_DIR/ulb-creditcard-fraud/creditcard.parquet`` is used when present.
Otherwise the dataset is downloaded from OpenML (dataset 1597, "creditcard"), converted to the
same canonical form and written there. Either way the frame is verified (rows, column names,
frauds, checksum of the canonical form) before anything is written.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import requests
from tqdm import tqdm

from mlp_orchestration.errors import DataUnavailableError, DataVerificationError
from mlp_orchestration.hashing import frame_checksum
from mlp_orchestration.settings import Settings

logger = logging.getLogger(__name__)

DATASET = "ulb-creditcard-fraud"
FILE_NAME = "creditcard.parquet"
OPENML_ID = 1597
COLUMNS = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount", "Class"]
EXPECTED_ROWS = 284_807
EXPECTED_FRAUDS = 492
# SHA-256 of the canonical form (see hashing.frame_checksum) of the published dataset, whose
# original creditcard.csv has SHA-256
# 76274b691b16a6c49d3f159c883398e03ccd6d1ee12d9d8ee38f4b4b98551a89.
EXPECTED_CHECKSUM = "74bd0cc0a22bb55941295ac99421259a4c0d73e3bffa79946385b239bc0da2bb"
CITATION = (
    "Dal Pozzolo, Caelen, Johnson and Bontempi. Calibrating Probability with Undersampling for "
    "Unbalanced Classification. IEEE CIDM 2015. Licence: ODbL 1.0 (database), DbCL 1.0 (contents)."
)


@dataclass(frozen=True)
class LoadedDataset:
    frame: pd.DataFrame
    source: str
    checksum: str


def to_canonical(frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Reorder and cast columns to the canonical form: 30 float64 columns and int64 Class."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    extra = [c for c in frame.columns if c not in COLUMNS]
    if missing or extra:
        raise DataVerificationError(
            f"{source}: expected the 31 columns {', '.join(COLUMNS)}; "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}. {_fix_hint()}"
        )
    frame = frame[COLUMNS].copy()
    try:
        for column in COLUMNS[:-1]:
            frame[column] = pd.to_numeric(frame[column], errors="raise").astype(np.float64)
        labels = frame["Class"].astype(str).str.strip().str.strip("'\"")
        frame["Class"] = pd.to_numeric(labels, errors="raise").astype(np.int64)
    except (ValueError, TypeError) as exc:
        raise DataVerificationError(
            f"{source}: a column holds non-numeric values ({exc}). {_fix_hint()}"
        ) from exc
    return frame.reset_index(drop=True)


def verify(frame: pd.DataFrame, *, source: str) -> str:
    """Check shape, names, label count and checksum; return the checksum.

    Raises:
        DataVerificationError: naming what was found and how to fix it.
    """
    if list(frame.columns) != COLUMNS:
        raise DataVerificationError(
            f"{source}: columns are {list(frame.columns)}, expected {COLUMNS}. {_fix_hint()}"
        )
    rows = len(frame)
    frauds = int(frame["Class"].sum())
    problems = []
    if rows != EXPECTED_ROWS:
        problems.append(f"{rows:,} rows instead of {EXPECTED_ROWS:,}")
    if frauds != EXPECTED_FRAUDS:
        problems.append(f"{frauds} frauds instead of {EXPECTED_FRAUDS}")
    if not set(frame["Class"].unique()) <= {0, 1}:
        problems.append(f"Class values {sorted(frame['Class'].unique())[:5]} outside {{0, 1}}")
    if problems:
        raise DataVerificationError(
            f"{source} is not the complete ULB dataset: {'; '.join(problems)}. {_fix_hint()}"
        )
    checksum = frame_checksum(frame)
    if checksum != EXPECTED_CHECKSUM:
        raise DataVerificationError(
            f"{source} has the right shape but different values: checksum {checksum[:16]}... "
            f"instead of {EXPECTED_CHECKSUM[:16]}.... {_fix_hint()}"
        )
    return checksum


def _fix_hint() -> str:
    return (
        "Fix: put the original creditcard.parquet (SHA-256 16962afb...) in "
        f"$MLP_DATA_DIR/{DATASET}/, or remove the bad file and let the loader download "
        f"OpenML dataset {OPENML_ID} (needs network access to MLP_OPENML_URL)."
    )


def local_path(settings: Settings) -> Path:
    return settings.data_path / DATASET / FILE_NAME


def load(settings: Settings) -> LoadedDataset:
    """Return the verified dataset from the local copy, downloading it first if absent."""
    path = local_path(settings)
    if path.exists():
        logger.info("reading %s", path)
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise DataVerificationError(
                f"{path} is not a readable Parquet file: {exc}. {_fix_hint()}"
            ) from exc
        frame = to_canonical(frame, source=str(path))
        checksum = verify(frame, source=str(path))
        return LoadedDataset(frame=frame, source=str(path), checksum=checksum)
    frame, url = download(settings)
    checksum = verify(frame, source=url)
    _write_atomically(frame, path)
    logger.info("cached the verified download at %s", path)
    return LoadedDataset(frame=frame, source=url, checksum=checksum)


def download(settings: Settings) -> tuple[pd.DataFrame, str]:
    """Fetch OpenML dataset 1597 and return it in canonical form, with the URL it came from."""
    base = settings.openml_url.rstrip("/")
    description_url = f"{base}/api/v1/json/data/{OPENML_ID}"
    try:
        response = requests.get(description_url, timeout=settings.download_timeout_s)
        response.raise_for_status()
        description = response.json()["data_set_description"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise DataUnavailableError(
            f"the ULB dataset is not at {local_path(settings)} and OpenML could not be reached "
            f"at {description_url} ({exc}). Fix: copy creditcard.parquet into "
            f"$MLP_DATA_DIR/{DATASET}/ (MLP_DATA_DIR is {settings.data_path}), or allow network "
            "access to OpenML (or point MLP_OPENML_URL at a mirror) and run again."
        ) from exc
    if str(description.get("name", "")).lower() != "creditcard":
        raise DataVerificationError(
            f"OpenML dataset {OPENML_ID} at {description_url} is named "
            f"{description.get('name')!r}, not 'creditcard'. {_fix_hint()}"
        )
    parquet_url = description.get("parquet_url")
    if parquet_url:
        raw = _fetch(parquet_url, settings)
        frame = pd.read_parquet(io.BytesIO(raw))
        return to_canonical(frame, source=parquet_url), parquet_url
    arff_url = description.get("url")
    if not arff_url:
        raise DataUnavailableError(
            f"OpenML's description of dataset {OPENML_ID} names no file to download. {_fix_hint()}"
        )
    raw = _fetch(arff_url, settings)
    return to_canonical(parse_arff(raw.decode("utf-8"), source=arff_url), source=arff_url), arff_url


def _fetch(url: str, settings: Settings) -> bytes:
    try:
        with requests.get(url, stream=True, timeout=settings.download_timeout_s) as response:
            response.raise_for_status()
            total = int(response.headers.get("Content-Length", 0)) or None
            buffer = io.BytesIO()
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {DATASET}") as bar:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    buffer.write(chunk)
                    bar.update(len(chunk))
            return buffer.getvalue()
    except requests.RequestException as exc:
        raise DataUnavailableError(
            f"downloading {url} failed ({exc}). Fix: copy creditcard.parquet into "
            f"$MLP_DATA_DIR/{DATASET}/, or retry when the source is reachable."
        ) from exc


def parse_arff(text: str, *, source: str) -> pd.DataFrame:
    """Parse a dense ARFF file of numeric and nominal attributes into a frame of strings."""
    names: list[str] = []
    lines = iter(text.splitlines())
    for line in lines:
        stripped = line.strip()
        lowered = stripped.lower()
        if not stripped or stripped.startswith("%"):
            continue
        if lowered.startswith("@attribute"):
            name = stripped.split(None, 2)[1].strip("'\"")
            names.append(name)
        elif lowered.startswith("@data"):
            break
    if not names:
        raise DataVerificationError(f"{source}: no @attribute lines found; not an ARFF file.")
    body = "\n".join(line for line in lines if line.strip() and not line.startswith("%"))
    frame = pd.read_csv(io.StringIO(body), header=None, names=names, dtype=str, quotechar="'")
    return frame


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".creditcard-", suffix=".tmp")
    os.close(handle)
    try:
        frame.to_parquet(temporary, index=False, compression="zstd")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def with_event_time(frame: pd.DataFrame, start: datetime) -> pd.DataFrame:
    """Add ``transaction_id`` (row position) and ``event_time`` (start + Time seconds)."""
    result = frame.copy()
    result.insert(0, "transaction_id", np.arange(len(frame), dtype=np.int64))
    offsets = pd.to_timedelta(frame["Time"].to_numpy(), unit="s")
    result.insert(1, "event_time", pd.Timestamp(start) + offsets)
    return result
