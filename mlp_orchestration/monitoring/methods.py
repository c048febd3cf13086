"""Drift methods that measure effect size, registered in Evidently's stat-test registry.

At production volume (tens of thousands of rows per window) a p-value test flags nearly every
column, because any difference, however small, becomes significant. Each method here returns a
distance whose size means the same at 2,000 rows as at 200,000, so a threshold set once holds:

- ``psi``: population stability index over bins cut at the reference's quantiles.
- ``wasserstein``: Evidently's own normed Wasserstein distance, W1 divided by the reference's
  standard deviation, so a mean shift of 0.25 standard deviations scores about 0.25.
- ``ks``: the Kolmogorov-Smirnov statistic D (the largest gap between the two empirical CDFs),
  not its p-value as in Evidently's ``ks``.
- ``jensenshannon``: Jensen-Shannon distance (base 2, between 0 and 1) over reference-quantile
  bins.

Evidently 0.7.23's own ``psi`` and ``jensenshannon`` cut numerical columns into equal-width
Sturges bins over the combined range. On heavy-tailed columns such as ULB's ``Amount`` (0 to
25,691, median 22) nearly every row lands in the first bin, and a shift of a quarter standard
deviation scores about 0.001; quantile bins score the same shift above 5. The functions are
registered under their own names (``mlp_psi_q10`` and so on) so Evidently's reports show the same
figures that the drift verdict uses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlp_orchestration.spec import DriftMethod

# Bins empty on one side get this share, so PSI stays finite (a common convention; Evidently
# uses 0.0001 as well).
_MIN_SHARE = 1e-4

_registered: dict[str, str] = {}
_lock = threading.Lock()


def quantile_shares(
    reference: np.ndarray, current: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return the share of each sample in bins cut at the reference's quantiles.

    Repeated quantiles (ties, as in amounts of exactly 1.00) merge into one edge, so a column
    with few distinct values gets fewer, non-empty bins.
    """
    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    slots = edges.size + 1
    reference_counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=slots)
    current_counts = np.bincount(np.searchsorted(edges, current, side="right"), minlength=slots)
    return reference_counts / reference.size, current_counts / current.size


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index over ``bins`` reference-quantile bins."""
    reference_shares, current_shares = quantile_shares(reference, current, bins)
    reference_shares = np.clip(reference_shares, _MIN_SHARE, None)
    current_shares = np.clip(current_shares, _MIN_SHARE, None)
    return float(
        np.sum((current_shares - reference_shares) * np.log(current_shares / reference_shares))
    )


def js_distance(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Jensen-Shannon distance (base 2) over ``bins`` reference-quantile bins."""
    reference_shares, current_shares = quantile_shares(reference, current, bins)
    return float(jensenshannon(reference_shares, current_shares, base=2))


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic D: the largest gap between the two empirical CDFs."""
    return float(stats.ks_2samp(reference, current, method="asymp").statistic)


def _as_array(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _stattest_function(method: DriftMethod, bins: int) -> Callable[..., tuple[float, bool]]:
    def psi_test(reference: Any, current: Any, _feature_type: Any, threshold: float):
        value = psi(_as_array(reference), _as_array(current), bins)
        return value, value >= threshold

    def js_test(reference: Any, current: Any, _feature_type: Any, threshold: float):
        value = js_distance(_as_array(reference), _as_array(current), bins)
        return value, value >= threshold

    def ks_test(reference: Any, current: Any, _feature_type: Any, threshold: float):
        value = ks_statistic(_as_array(reference), _as_array(current))
        return value, value >= threshold

    functions = {"psi": psi_test, "jensenshannon": js_test, "ks": ks_test}
    return functions[method]


_DISPLAY_NAMES = {
    "psi": "PSI, {bins} reference-quantile bins",
    "jensenshannon": "Jensen-Shannon distance, {bins} reference-quantile bins",
    "ks": "K-S statistic D",
}


def evidently_stattest_name(method: DriftMethod, bins: int = 10) -> str:
    """Return ``method``'s name in Evidently's stat-test registry, registering it on first use.

    Importing Evidently happens here, on the first call, never at module import.
    """
    if method == "wasserstein":
        return "wasserstein"
    name = f"mlp_{method}" if method == "ks" else f"mlp_{method}_q{bins}"
    with _lock:
        if name in _registered:
            return name
        from evidently.legacy.calculations.stattests.registry import (
            StatTest,
            register_stattest,
        )
        from evidently.legacy.core import ColumnType

        stat_test = StatTest(
            name=name,
            display_name=_DISPLAY_NAMES[method].format(bins=bins),
            allowed_feature_types=[ColumnType.Numerical],
            default_threshold=0.1,
        )
        register_stattest(stat_test, _stattest_function(method, bins))
        _registered[name] = name
    return name


def run_stattest(
    method: DriftMethod,
    *,
    reference: Any,
    current: Any,
    threshold: float,
    bins: int = 10,
) -> tuple[float, bool]:
    """Score one numerical column with Evidently's registered stat test for ``method``.

    Returns:
        The drift score and whether it reaches ``threshold``.
    """
    import pandas as pd
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    name = evidently_stattest_name(method, bins)
    reference_series = reference if isinstance(reference, pd.Series) else pd.Series(reference)
    current_series = current if isinstance(current, pd.Series) else pd.Series(current)
    stat_test = get_stattest(reference_series, current_series, ColumnType.Numerical, name)
    result = stat_test(reference_series, current_series, ColumnType.Numerical, threshold)
    return float(result.drift_score), bool(result.drifted)
