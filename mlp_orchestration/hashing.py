"""Content hashes of data frames, stable across processes, machines and file formats."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def frame_checksum(frame: pd.DataFrame) -> str:
    """SHA-256 over column names, dtypes and little-endian values, in column order.

    Timezone-aware timestamps are hashed as UTC nanoseconds, so the hash does not depend on the
    display timezone or on how the frame was stored (Parquet, SQL, memory).
    """
    digest = hashlib.sha256()
    for column in frame.columns:
        series = frame[column]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            values = series.dt.tz_convert("UTC").dt.as_unit("ns").array.asi8
            dtype_name = "datetime64[ns, UTC]"
        else:
            values = np.ascontiguousarray(series.to_numpy())
            if values.dtype == object:
                raise TypeError(f"column {column!r} has object dtype; cast it before hashing")
            dtype_name = str(values.dtype)
        digest.update(str(column).encode() + b"\0" + dtype_name.encode() + b"\0")
        digest.update(values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes())
    return digest.hexdigest()
