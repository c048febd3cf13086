"""LightGBM parameters of the built-in trainer: the platform's defaults and their check.

Spec validation runs the check, so a misspelled or out-of-range parameter in
``training.params`` is rejected when the spec is loaded, not ignored by LightGBM or found only
when training starts. The check builds a LightGBM booster on a few rows without training it.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
from typing import Any

logger = logging.getLogger(__name__)

BUILTIN_TRAINER = "mlp_orchestration.training:train_lightgbm_binary"
PARAMETERS_DOC = "https://lightgbm.readthedocs.io/en/latest/Parameters.html"

PLATFORM_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": "binary_logloss",
    "verbosity": -1,
    # Fixed thread count and deterministic mode: the same snapshot gives the same trees.
    "num_threads": 2,
    "deterministic": True,
    "force_col_wise": True,
}

# Parameters the spec sets in its own fields. In params they would silently override (or be
# overridden by) those fields, so they are rejected there.
SPEC_OWNED_PARAMS = {
    "seed": "training.seed",
    "num_iterations": "training.num_boost_round",
    "early_stopping_round": "training.early_stopping_rounds",
}

# "Check failed: (num_leaves) > (1) at /path/config_auto.cpp, line 352 ."
_CHECK_FAILED = re.compile(r"^Check failed: \((\w+)\) (\S+) \((.+?)\)")
_SOURCE_LOCATION = re.compile(r"\s+at \S+, line \d+\s*\.?\s*$")


def training_params(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Return the parameters LightGBM trains with: the platform's defaults, then the spec's."""
    return {**PLATFORM_PARAMS, **params, "seed": seed}


def find_param_problems(
    params: dict[str, Any], *, seed: int, feature_names: list[str]
) -> list[str]:
    """Return one message per parameter LightGBM does not know or rejects; empty when valid.

    Each message names the field (``training.params.<name>``), the value and the fix.
    """
    problems = _name_problems(params)
    error = _booster_error(training_params(params, seed), feature_names)
    if error is None:
        return problems

    # LightGBM stops at the first bad value: try each parameter alone to name the culprits.
    rejected = []
    for name, value in params.items():
        alone = _booster_error(training_params({name: value}, seed), feature_names)
        if alone is not None:
            rejected.append(
                f"training.params.{name}: value {value!r} is invalid: {alone}. Fix the value "
                f"(see {PARAMETERS_DOC})."
            )
    if not rejected:
        rejected.append(
            f"training.params: LightGBM rejects these parameters together: {error}. Fix the "
            f"conflicting values (see {PARAMETERS_DOC})."
        )
    return problems + rejected


def _name_problems(params: dict[str, Any]) -> list[str]:
    aliases = _parameter_aliases()
    if aliases is None:
        return []
    canonical = {alias: name for name, names in aliases.items() for alias in names}
    problems = []
    for name in params:
        if name not in canonical:
            close = difflib.get_close_matches(name, canonical, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            problems.append(
                f"training.params.{name}: unknown LightGBM parameter (LightGBM would ignore "
                f"it). {hint}Fix the name (see {PARAMETERS_DOC})."
            )
        elif canonical[name] in SPEC_OWNED_PARAMS:
            field = SPEC_OWNED_PARAMS[canonical[name]]
            problems.append(
                f"training.params.{name}: sets LightGBM's {canonical[name]}, which the "
                f"platform takes from {field}. Remove it from params and set {field}."
            )
    return problems


@functools.cache
def _parameter_aliases() -> dict[str, list[str]] | None:
    """Return every LightGBM parameter with its aliases, or None when LightGBM cannot list them."""
    import lightgbm as lgb

    try:
        # NOTE: lightgbm has no public list of parameter names. _ConfigAliases wraps the C API
        # LGBM_DumpParamAliases (lightgbm 4.x) and could move in a later release.
        return lgb.basic._ConfigAliases._get_all_param_aliases()
    except AttributeError:
        logger.warning(
            "lightgbm %s does not list its parameters; misspelled training.params names are "
            "not detected",
            lgb.__version__,
        )
        return None


def _booster_error(params: dict[str, Any], feature_names: list[str]) -> str | None:
    """Return LightGBM's complaint about the parameters, or None when it accepts them.

    Building a booster parses and range-checks every parameter against a data set with the
    spec's features, which is what training does first, without boosting any tree.
    """
    import lightgbm as lgb
    import numpy as np

    width = len(feature_names)
    rows = np.arange(8 * width, dtype=float).reshape(8, width)
    # Quiet while the data set is built, because a few rows always draw LightGBM's "no meaningful
    # features" warning, which is not about the spec.
    data = lgb.Dataset(rows, label=[0, 1] * 4, feature_name=feature_names, params={"verbosity": -1})
    try:
        lgb.Booster(params=params, train_set=data)
    except lgb.basic.LightGBMError as exc:
        return _readable(str(exc))
    return None


def _readable(message: str) -> str:
    message = _SOURCE_LOCATION.sub("", message.strip())
    check = _CHECK_FAILED.match(message)
    if check:
        name, operator, bound = check.groups()
        return f"LightGBM requires {name} {operator} {bound}"
    return message
