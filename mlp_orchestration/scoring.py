"""The scoring code path shared by the consistency gate and the scoring service.

Features are matched by name against the model's own feature list, turned into a float64 row
and scored by LightGBM from its native text format with one thread. Single rows go through
LightGBM's C API fast path (``LGBM_BoosterPredictForMatSingleRowFast``), which skips the
per-call parameter parsing and array conversion of ``Booster.predict``.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from mlp_orchestration.errors import MlpError, ModelLoadError

# Values from LightGBM's c_api.h (stable since 3.0).
_PREDICT_NORMAL = 0
_PREDICT_CONTRIB = 3
_DTYPE_FLOAT64 = 1
# One thread per predict: with LightGBM's default thread pool, single-row predicts from several
# server workers contend for the cores and p99 latency jumps from tens of microseconds to ms.
_PREDICT_PARAMS = "num_threads=1"


class FeatureError(MlpError):
    """A request's features do not match the model's feature list."""

    def __init__(
        self,
        *,
        missing: Sequence[str] = (),
        unknown: Sequence[str] = (),
        invalid: Sequence[str] = (),
    ) -> None:
        parts = []
        if missing:
            parts.append(f"missing features: {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown features: {', '.join(unknown)}")
        if invalid:
            parts.append(f"non-numeric or non-finite values for: {', '.join(invalid)}")
        message = "; ".join(parts) + (
            ". Send every feature of the model by name, each a finite number or null."
        )
        super().__init__(message)
        self.missing = list(missing)
        self.unknown = list(unknown)
        self.invalid = list(invalid)


class FeatureVectorizer:
    """Turns ``{name: value}`` into a row in the model's feature order."""

    def __init__(self, feature_names: Sequence[str]) -> None:
        self.feature_names = list(feature_names)
        self._index = {name: i for i, name in enumerate(self.feature_names)}
        self._width = len(self.feature_names)

    def vector(self, features: Mapping[str, Any]) -> np.ndarray:
        """Return a float64 row; None becomes NaN, which LightGBM treats as missing.

        Raises:
            FeatureError: naming every missing, unknown or non-numeric feature.
        """
        row = np.empty(self._width, dtype=np.float64)
        index = self._index
        seen = 0
        unknown: list[str] = []
        invalid: list[str] = []
        for name, value in features.items():
            position = index.get(name)
            if position is None:
                unknown.append(str(name))
                continue
            seen += 1
            if value is None:
                row[position] = math.nan
            elif type(value) is float or type(value) is int:
                if not math.isfinite(value):
                    invalid.append(name)
                row[position] = value
            else:
                invalid.append(name)
        if unknown or invalid or seen != self._width:
            missing = [name for name in self.feature_names if name not in features]
            raise FeatureError(missing=missing, unknown=unknown, invalid=invalid)
        return row


class NativeModel:
    """A LightGBM booster loaded from its native text format, scored with one thread."""

    def __init__(self, booster: lgb.Booster, *, version: str = "") -> None:
        self.booster = booster
        self.version = version
        self.feature_names: list[str] = list(booster.feature_name())
        self.vectorizer = FeatureVectorizer(self.feature_names)
        self._fast = _FastSingleRow(booster, len(self.feature_names))

    @classmethod
    def from_file(cls, path: Path, *, version: str = "") -> NativeModel:
        try:
            booster = lgb.Booster(model_file=str(path))
        except (lgb.basic.LightGBMError, OSError) as exc:
            raise ModelLoadError(f"cannot load LightGBM model {path}: {exc}") from exc
        return cls(booster, version=version)

    @classmethod
    def from_string(cls, text: str, *, version: str = "") -> NativeModel:
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise ModelLoadError(f"cannot parse LightGBM model text: {exc}") from exc
        return cls(booster, version=version)

    def predict_row(self, row: np.ndarray) -> float:
        """Score one row already in feature order."""
        return self._fast.predict(row)

    def predict_features(self, features: Mapping[str, Any]) -> float:
        return self._fast.predict(self.vectorizer.vector(features))

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Score rows in feature order."""
        return self.booster.predict(matrix, num_threads=1)

    def contributions(self, row: np.ndarray) -> tuple[dict[str, float], float]:
        """Return TreeSHAP attributions per feature and the base value, in log-odds."""
        values = self.booster.predict(row.reshape(1, -1), pred_contrib=True, num_threads=1)[0]
        attributions = {name: float(values[i]) for i, name in enumerate(self.feature_names)}
        return attributions, float(values[-1])

    def warm(self) -> None:
        """Score a row of zeros once, so the first real request pays no setup cost."""
        row = np.zeros(len(self.feature_names), dtype=np.float64)
        self.predict_row(row)
        self.contributions(row)


def _library_holding_gil() -> ctypes.PyDLL:
    """LightGBM's library loaded again through PyDLL, whose calls keep the GIL.

    ctypes.CDLL releases the GIL around every call. For a predict of a few microseconds, taking
    the GIL back can wait a whole switch interval (5 ms by default) while another thread (the
    prediction-log writer, a shadow worker) runs Python code, which shows up as tail latency.
    """
    return ctypes.PyDLL(lgb.basic._LIB._name)


class _FastSingleRow:
    """LightGBM's single-row C API fast path, with its config set up once per booster."""

    _gil_lib: ctypes.PyDLL | None = None

    def __init__(self, booster: lgb.Booster, width: int) -> None:
        if _FastSingleRow._gil_lib is None:
            _FastSingleRow._gil_lib = _library_holding_gil()
        self._predict_fast = _FastSingleRow._gil_lib.LGBM_BoosterPredictForMatSingleRowFast
        self._lib = lgb.basic._LIB
        self._booster = booster  # keeps the booster handle alive as long as the config
        self._width = width
        self._handle = ctypes.c_void_p()
        self._out_len = ctypes.c_int64(0)
        self._out = np.zeros(1, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        # The fast config owns scratch buffers, so one config must not serve two threads at once.
        self._lock = threading.Lock()
        status = self._lib.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle,
            ctypes.c_int(_PREDICT_NORMAL),
            ctypes.c_int(0),
            ctypes.c_int(-1),
            ctypes.c_int(_DTYPE_FLOAT64),
            ctypes.c_int32(width),
            ctypes.c_char_p(_PREDICT_PARAMS.encode()),
            ctypes.byref(self._handle),
        )
        if status != 0:
            raise ModelLoadError(
                "LightGBM fast predict setup failed: " + self._lib.LGBM_GetLastError().decode()
            )

    def predict(self, row: np.ndarray) -> float:
        if row.dtype != np.float64 or not row.flags.c_contiguous:
            row = np.ascontiguousarray(row, dtype=np.float64)
        with self._lock:
            status = self._predict_fast(
                self._handle,
                row.ctypes.data_as(ctypes.c_void_p),
                ctypes.byref(self._out_len),
                self._out_ptr,
            )
            if status != 0:
                raise MlpError("LightGBM predict failed: " + self._lib.LGBM_GetLastError().decode())
            return float(self._out[0])

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value:
            self._lib.LGBM_FastConfigFree(handle)
