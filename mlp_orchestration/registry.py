"""MLflow tracking and Model Registry access: stores, aliases, tags and model downloads.

Aliases carry the roles (``champion``, ``challenger``); registry stages are deprecated in MLflow
and not used. The scoring path downloads the LightGBM model in its native text format
(``model.lgb``) and never unpickles anything.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mlp_orchestration.errors import ModelLoadError, NotFoundError
from mlp_orchestration.settings import Settings

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
NATIVE_MODEL_FILE = "model.lgb"


def experiment_name(model: str) -> str:
    return f"mlp-{model}"


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured stores and return a client for them."""
    # Artifact downloads are small and frequent here; MLflow's progress bars only add noise.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if settings.tracking_uri.startswith("sqlite:///"):
        Path(settings.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def ensure_experiment(client: MlflowClient, model: str, settings: Settings) -> str:
    """Return the id of the model's experiment, creating it with the configured artifact root."""
    name = experiment_name(model)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = f"{settings.artifact_root.rstrip('/')}/{name}"
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        # Another process created it between the lookup and the create.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def alias_version(client: MlflowClient, model: str, alias: str) -> str | None:
    """Return the version holding an alias, or None when the alias or model is absent."""
    try:
        return str(client.get_model_version_by_alias(model, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def set_alias(client: MlflowClient, model: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(model, alias, version)
    logger.info("MLflow alias %s of %s now points at version %s", alias, model, version)


def remove_alias(client: MlflowClient, model: str, alias: str) -> None:
    """Remove an alias if present."""
    if alias_version(client, model, alias) is not None:
        client.delete_registered_model_alias(model, alias)
        logger.info("MLflow alias %s of %s removed", alias, model)


def get_version(client: MlflowClient, model: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(model, str(version))
    except MlflowException as exc:
        raise NotFoundError(
            f"model {model!r} has no registered version {version!r} in the MLflow registry: "
            f"{exc.message}"
        ) from exc


def set_version_tags(client: MlflowClient, model: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model, str(version), key, str(value))


def download_native_model(settings: Settings, model: str, version: str, dst: Path) -> Path:
    """Download a registered version's ``model.lgb`` to ``dst`` and return its path.

    The download lands in a temporary folder first, so ``dst`` never holds a partial file.

    Raises:
        ModelLoadError: the version is missing or has no native LightGBM file.
    """
    configure(settings)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".download-") as scratch:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{model}/{version}", dst_path=scratch
            )
        except MlflowException as exc:
            raise ModelLoadError(
                f"cannot download {model} version {version} from the MLflow registry at "
                f"{settings.registry_uri}: {exc.message}"
            ) from exc
        except OSError as exc:
            raise ModelLoadError(f"cannot download {model} version {version}: {exc}") from exc
        source = Path(local) / NATIVE_MODEL_FILE
        if not source.is_file():
            raise ModelLoadError(
                f"{model} version {version} has no {NATIVE_MODEL_FILE} (LightGBM native format); "
                "register it with mlflow.lightgbm.log_model from a lightgbm.Booster"
            )
        partial = dst.with_name(dst.name + ".partial")
        shutil.copyfile(source, partial)
        os.replace(partial, dst)
    return dst


def run_url(settings: Settings, experiment_id: str, run_id: str) -> str:
    return f"{settings.mlflow_ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def version_url(settings: Settings, model: str, version: str) -> str:
    return f"{settings.mlflow_ui_url.rstrip('/')}/#/models/{model}/versions/{version}"
