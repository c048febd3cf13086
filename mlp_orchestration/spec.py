"""Model specs: the YAML hand-off from data science to the platform, validated with pydantic.

One file per model under ``MLP_SPECS_DIR``. The platform is generic over specs: assets, checks,
gates, rollout and monitoring all read their names, columns and thresholds from here.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mlp_orchestration.data.schemas import DATASET_SCHEMAS
from mlp_orchestration.errors import ConfigurationError, SpecError
from mlp_orchestration.lightgbm_config import BUILTIN_TRAINER, find_param_problems

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# LightGBM objectives whose predictions are probabilities of the positive class.
BINARY_OBJECTIVES = frozenset({"binary", "cross_entropy", "xentropy"})
MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def parse_duration(value: Any) -> timedelta:
    """Parse "90s", "15m", "16h", "1d" or a number of seconds into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    raise ValueError(f"expected a duration such as '30s', '15m', '16h' or '1d', got {value!r}")


def _parse_utc(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return value


def parse_as_of(value: str | None, *, source: str = "as_of") -> datetime | None:
    """Parse an optional ISO 8601 cut-off given on the command line or in run config.

    Raises:
        ConfigurationError: the text is not an ISO 8601 time.
    """
    if value is None or not value.strip():
        return None
    try:
        return _parse_utc(value.strip())
    except ValueError:
        raise ConfigurationError(
            f"{source} {value!r} is not an ISO 8601 time; use for example 2013-09-02T06:00:00Z"
        ) from None


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
UtcDatetime = Annotated[datetime, BeforeValidator(_parse_utc)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # YAML reads yes/no/on/off as booleans, and pydantic would turn them into 1 and 0.
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool) and annotation is not bool and "bool" not in str(annotation):
            raise ValueError(f"expected a number or text, got the boolean {value}")
        return value


class FeatureSpec(_Strict):
    name: str = Field(min_length=1)
    type: Literal["float", "int"] = "float"
    min: float | None = None
    max: float | None = None
    max_missing_rate: Fraction = 0.0
    description: str = ""

    @model_validator(mode="after")
    def _range(self) -> FeatureSpec:
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None and math.isnan(value):
                raise ValueError(f"{bound} is nan; give a number, or leave {bound} out")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class SegmentSpec(_Strict):
    """A way to cut the holdout into groups; each group is gated on its own."""

    name: str = Field(min_length=1)
    column: str = Field(min_length=1, description="A feature, or 'hour_of_day' of event time.")
    edges: list[float] = Field(min_length=2)
    labels: list[str]

    @model_validator(mode="after")
    def _edges(self) -> SegmentSpec:
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"edges must increase strictly, got {self.edges}")
        if len(self.labels) != len(self.edges) - 1:
            raise ValueError(
                f"{len(self.edges)} edges make {len(self.edges) - 1} groups, "
                f"but {len(self.labels)} labels were given"
            )
        return self


class WindowsSpec(_Strict):
    """Training, validation and holdout windows, back to back, ending at ``as_of``."""

    as_of: UtcDatetime
    training: Duration
    validation: Duration
    holdout: Duration

    @field_validator("training", "validation", "holdout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be a positive duration, got {value}")
        return value

    def bounds(self, as_of: datetime | None = None) -> dict[str, tuple[datetime, datetime]]:
        """Return [start, end) of each window for the given cut-off (default: ``as_of``)."""
        end = _parse_utc(as_of) if as_of is not None else self.as_of
        holdout_start = end - self.holdout
        validation_start = holdout_start - self.validation
        training_start = validation_start - self.training
        return {
            "training": (training_start, validation_start),
            "validation": (validation_start, holdout_start),
            "holdout": (holdout_start, end),
        }


class TrainingSpec(_Strict):
    trainer: str = Field(
        BUILTIN_TRAINER,
        description="Import path 'module:function' of the training function.",
    )
    seed: int = 42
    num_boost_round: int = Field(400, ge=1, le=100_000)
    early_stopping_rounds: int = Field(50, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("trainer")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if value.count(":") != 1:
            raise ValueError(f"expected 'module:function', got {value!r}")
        module_name, function_name = value.split(":")
        try:
            function = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot be imported ({exc}); give an importable function") from None
        try:
            inspect.signature(function).bind(None, None, None)
        except (TypeError, ValueError):
            raise ValueError(
                f"{value} does not take (training frame, validation frame, spec); a trainer is "
                "called as trainer(train, validation, spec) and returns a lightgbm.Booster"
            ) from None
        return value

    @field_validator("params")
    @classmethod
    def _binary_objective(cls, value: dict[str, Any]) -> dict[str, Any]:
        objective = value.get("objective", "binary")
        if objective not in BINARY_OBJECTIVES:
            raise ValueError(
                f"objective {objective!r} does not produce probabilities of the positive class; "
                f"use one of {sorted(BINARY_OBJECTIVES)}"
            )
        return value

    def resolve_trainer(self) -> Callable[..., Any]:
        module_name, function_name = self.trainer.split(":")
        try:
            module = importlib.import_module(module_name)
            return getattr(module, function_name)
        except (ImportError, AttributeError) as exc:
            raise SpecError(
                f"training.trainer {self.trainer!r} cannot be imported: {exc}. "
                "Give an importable 'module:function'."
            ) from exc


class ValidationSpec(_Strict):
    """Thresholds of the snapshot's asset checks."""

    min_rows: int = Field(1000, ge=1)
    label_rate_min: Fraction = 0.0
    label_rate_max: Fraction = 1.0
    max_duplicate_ids: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _rates(self) -> ValidationSpec:
        if self.label_rate_min > self.label_rate_max:
            raise ValueError(
                f"label_rate_min {self.label_rate_min} is greater than "
                f"label_rate_max {self.label_rate_max}"
            )
        return self


class PerformanceGateSpec(_Strict):
    min_pr_auc: Fraction
    min_roc_auc: Fraction
    max_drop_vs_champion: Fraction = Field(
        0.02, description="Allowed PR-AUC drop against the champion on the same holdout."
    )


class SegmentGateSpec(_Strict):
    min_pr_auc: Fraction
    min_positives: int = Field(
        10, ge=1, description="Groups with fewer positives are reported but not gated."
    )


class BiasGateSpec(_Strict):
    max_tpr_gap: Fraction = 0.1
    max_alert_rate_ratio: float = Field(1.25, ge=1.0)
    min_group_size: int = Field(100, ge=1)


class ConsistencyGateSpec(_Strict):
    max_abs_diff: float = Field(
        0.0, ge=0.0, description="Largest allowed score difference; 0 means bit-identical."
    )


class GatesSpec(_Strict):
    performance: PerformanceGateSpec
    segments: SegmentGateSpec | None = None
    bias: BiasGateSpec | None = None
    consistency: ConsistencyGateSpec = ConsistencyGateSpec()


class ShadowSpec(_Strict):
    """Thresholds of the shadow gate: the challenger scores the champion's traffic first."""

    min_requests: int = Field(1000, ge=1, description="Paired requests the gate needs.")
    min_agreement: Fraction = Field(
        0.98, description="Least share of requests whose decision is the same for both."
    )
    max_flip_rate: Fraction = Field(
        0.02, description="Largest share of flipped decisions overall and in any segment."
    )
    min_segment_requests: int = Field(
        200, ge=1, description="Segments with fewer paired requests are reported, not gated."
    )
    max_score_psi: float = Field(0.25, ge=0.0)
    min_score_correlation: float = Field(
        0.8, ge=-1.0, le=1.0, description="Least Pearson correlation of the two log-odds scores."
    )
    max_pr_auc_drop: Fraction = Field(
        0.05, description="Largest PR-AUC drop against the champion once labels have arrived."
    )
    min_labelled_positives: int = Field(
        10, ge=1, description="PR-AUC is gated only past this many labelled positives."
    )


class GuardSpec(_Strict):
    """Limits on the canary arm against the champion arm in the same routing version."""

    max_error_rate_increase: Fraction = 0.01
    max_p99_latency_ratio: float = Field(2.0, gt=0)
    min_p99_latency_ms: float = Field(
        5.0,
        ge=0.0,
        description="A canary p99 below this is healthy whatever the ratio, so sub-millisecond "
        "jitter is not read as a regression.",
    )
    max_alert_rate_ratio: float = Field(2.0, ge=1.0)
    alert_rate_significance: Fraction = Field(
        0.01,
        description="The alert-rate guard breaches only when a one-sided binomial test rejects "
        "'canary rate <= ratio x champion rate' at this level.",
    )
    max_score_psi: float = Field(0.25, ge=0.0)
    min_precision_ratio: Fraction = 0.7
    min_recall_ratio: Fraction = 0.7
    min_labelled_positives: int = Field(
        5, ge=1, description="Precision and recall are judged only past this many positives."
    )


class RolloutSpec(_Strict):
    stages: list[Fraction] = Field(default_factory=lambda: [0.05, 0.25, 0.5, 1.0])
    min_requests: int = Field(1000, ge=1, description="Canary-arm requests each stage must see.")
    min_duration: Duration = timedelta(minutes=15)
    requires_approval: bool = False
    auto_start: bool = Field(
        True,
        description="The rollout sensor starts the shadow stage for a challenger that passed "
        "its gates and was never rolled out.",
    )
    guards: GuardSpec = GuardSpec()

    @field_validator("stages")
    @classmethod
    def _stages(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("needs at least one stage")
        if any(share <= 0 for share in value):
            raise ValueError(f"every stage share must be above 0, got {value}")
        if any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError(f"stage shares must increase, got {value}")
        if value[-1] != 1.0:
            raise ValueError(f"the last stage must be 1.0 (full traffic), got {value[-1]}")
        return value


DriftMethod = Literal["psi", "wasserstein", "ks", "jensenshannon"]


class ColumnDriftSpec(_Strict):
    method: DriftMethod
    threshold: float = Field(gt=0)


class DriftSpec(_Strict):
    partition: Literal["hourly", "daily"] = "hourly"
    partitions_start: UtcDatetime
    partitions_end: UtcDatetime | None = Field(
        None, description="Last partition boundary; None keeps adding partitions up to now."
    )
    min_rows: int = Field(500, ge=1)
    method: DriftMethod = "psi"
    threshold: float = Field(0.2, gt=0)
    columns: dict[str, ColumnDriftSpec] = Field(default_factory=dict)
    drift_share: Fraction = Field(
        0.3, description="A window drifts when this share of the columns drift."
    )
    score_method: DriftMethod = "psi"
    score_threshold: float = Field(0.2, gt=0)
    bins: int = Field(
        10,
        ge=2,
        le=100,
        description="Reference-quantile bins of the psi and jensenshannon methods.",
    )

    @model_validator(mode="after")
    def _partition_range(self) -> DriftSpec:
        if self.partitions_end is not None and self.partitions_end <= self.partitions_start:
            raise ValueError(
                f"partitions_end {self.partitions_end.isoformat()} must be after "
                f"partitions_start {self.partitions_start.isoformat()}"
            )
        return self


def _valid_cron(value: str) -> str:
    from dagster._utils.schedules import is_valid_cron_string

    if not is_valid_cron_string(value):
        raise ValueError(
            f"{value!r} is not a cron expression; use five fields such as '0 3 * * *' "
            "(minute hour day-of-month month day-of-week)"
        )
    return value


class RetrainSpec(_Strict):
    consecutive_windows: int = Field(2, ge=1)
    cooldown: Duration = timedelta(hours=6)
    schedule: Annotated[str, AfterValidator(_valid_cron)] = Field(
        "0 3 * * *", description="Cron schedule of the periodic retrain."
    )
    lookback: Duration = timedelta(days=1)


class SloSpec(_Strict):
    p99_latency_ms: float = Field(50.0, gt=0)
    max_error_rate: Fraction = 0.01
    min_availability: Fraction = 0.999
    window: Duration = Field(timedelta(hours=1), description="Length of one health window.")
    lookback: Duration = Field(
        timedelta(days=1), description="Windows computed, counted back from the newest request."
    )


class PerformanceMonitorSpec(_Strict):
    window: Duration = timedelta(hours=1)
    min_label_coverage: Fraction = 0.9
    lookback: Duration = Field(
        timedelta(days=2), description="Windows computed, counted back from the newest request."
    )


class MonitoringSpec(_Strict):
    drift: DriftSpec
    retrain: RetrainSpec = RetrainSpec()
    slo: SloSpec = SloSpec()
    performance: PerformanceMonitorSpec = PerformanceMonitorSpec()


class ModelSpec(_Strict):
    """Everything the platform needs to know about one model."""

    name: str
    description: str = ""
    owner: str = Field(min_length=1)
    dataset: Literal["ulb-creditcard-fraud"]
    entity_key: str = Field(min_length=1)
    event_time: str = Field(min_length=1)
    label: str = Field(min_length=1)
    features: list[FeatureSpec] = Field(min_length=1)
    protected_attributes: list[str] = Field(default_factory=list)
    segments: list[SegmentSpec] = Field(default_factory=list)
    alert_rate: Fraction = Field(
        0.005, description="Share of traffic the decision threshold flags; sets the threshold."
    )
    windows: WindowsSpec
    training: TrainingSpec = TrainingSpec()
    validation: ValidationSpec = ValidationSpec()
    gates: GatesSpec
    shadow: ShadowSpec = ShadowSpec()
    rollout: RolloutSpec = RolloutSpec()
    monitoring: MonitoringSpec

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not MODEL_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a valid model name: use 1-40 lowercase letters, digits or "
                "underscores, starting with a letter"
            )
        return value

    @field_validator("alert_rate")
    @classmethod
    def _alert_rate(cls, value: float) -> float:
        if value <= 0 or value >= 1:
            raise ValueError(f"must be strictly between 0 and 1, got {value}")
        return value

    @model_validator(mode="after")
    def _roles_not_features(self) -> ModelSpec:
        names = {feature.name for feature in self.features}
        for role in ("label", "entity_key", "event_time"):
            column = getattr(self, role)
            if column in names:
                raise ValueError(
                    f"features lists {column!r}, which is the {role.replace('_', ' ')}; a "
                    f"model must not read its {role.replace('_', ' ')} as a feature, so remove "
                    f"{column!r} from features"
                )
        return self

    @model_validator(mode="after")
    def _dataset_columns(self) -> ModelSpec:
        schema = DATASET_SCHEMAS[self.dataset]
        for role in ("entity_key", "event_time", "label"):
            expected = getattr(schema, role)
            if getattr(self, role) != expected:
                raise ValueError(
                    f"{role} is {getattr(self, role)!r}, but dataset {self.dataset} provides "
                    f"{expected!r}; set {role}: {expected}"
                )
        unknown = [f.name for f in self.features if f.name not in schema.features]
        if unknown:
            raise ValueError(
                f"features {unknown} are not columns of dataset {self.dataset}; its features "
                f"are {', '.join(schema.features)}"
            )
        unknown = [name for name in self.protected_attributes if name not in schema.features]
        if unknown:
            raise ValueError(
                f"protected_attributes {unknown} are not columns of dataset {self.dataset}"
            )
        return self

    @model_validator(mode="after")
    def _columns(self) -> ModelSpec:
        names = [feature.name for feature in self.features]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"features are listed more than once: {duplicates}")
        known = set(names) | {"hour_of_day"}
        for segment in self.segments:
            if segment.column not in known:
                raise ValueError(
                    f"segment {segment.name!r} uses column {segment.column!r}, which is not a "
                    "feature; use a feature name or 'hour_of_day'"
                )
        for column in self.monitoring.drift.columns:
            if column not in names:
                raise ValueError(
                    f"monitoring.drift.columns names {column!r}, which is not a feature"
                )
        if self.gates.bias is not None and not self.protected_attributes:
            raise ValueError("gates.bias is set but protected_attributes is empty")
        return self

    @model_validator(mode="after")
    def _lightgbm_params(self) -> ModelSpec:
        # Other trainers may read params differently, so only the built-in one is checked.
        if self.training.trainer != BUILTIN_TRAINER:
            return self
        problems = find_param_problems(
            self.training.params, seed=self.training.seed, feature_names=self.feature_names
        )
        if problems:
            # One line per parameter in the "  - " list of _format_validation_error.
            raise ValueError("\n  - ".join(problems))
        return self

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def registered_model_name(self) -> str:
        return self.name


def _format_validation_error(source: str, error: ValidationError) -> str:
    lines = [f"invalid model spec {source}:"]
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if not location:
            # A check across fields: the whole document is the input, so show only the reason.
            lines.append(f"  - {message}")
        elif item["type"] == "missing":
            lines.append(f"  - {location}: required field is missing")
        elif item["type"] == "extra_forbidden":
            lines.append(f"  - {location}: unknown field; remove it or check its spelling")
        else:
            lines.append(f"  - {location}: value {item.get('input')!r} is invalid: {message}")
    return "\n".join(lines)


def parse_spec(raw: Any, *, source: str = "<spec>") -> ModelSpec:
    """Validate a parsed YAML document as a model spec.

    Raises:
        SpecError: naming each invalid field, its value and what is allowed.
    """
    if not isinstance(raw, dict):
        raise SpecError(
            f"invalid model spec {source}: expected a mapping at the top level, "
            f"got {type(raw).__name__}"
        )
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_validation_error(source, exc)) from None


def load_spec_file(path: Path) -> ModelSpec:
    """Read and validate one spec file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read model spec {path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"model spec {path} is not valid YAML: {exc}") from exc
    spec = parse_spec(raw, source=str(path))
    if path.stem != spec.name:
        raise SpecError(
            f"model spec {path} declares name {spec.name!r}; rename the file to "
            f"{spec.name}.yaml or change the name"
        )
    return spec


def load_specs(specs_dir: Path) -> dict[str, ModelSpec]:
    """Load every ``*.yaml`` spec in a folder, keyed by model name."""
    if not specs_dir.exists():
        raise SpecError(f"spec folder {specs_dir} does not exist; set MLP_SPECS_DIR to a folder")
    if not specs_dir.is_dir():
        raise SpecError(f"MLP_SPECS_DIR {specs_dir} is a file; set it to the folder of spec files")
    specs = {}
    for path in sorted(specs_dir.glob("*.yaml")):
        spec = load_spec_file(path)
        specs[spec.name] = spec
    if not specs:
        raise SpecError(f"spec folder {specs_dir} holds no *.yaml model specs")
    return specs


def get_spec(specs: dict[str, ModelSpec], name: str) -> ModelSpec:
    """Return one spec by model name, or raise naming the known models."""
    try:
        return specs[name]
    except KeyError:
        known = ", ".join(sorted(specs)) or "none"
        raise SpecError(f"unknown model {name!r}; known models: {known}") from None
