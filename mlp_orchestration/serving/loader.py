"""Downloads registered model versions from MLflow and loads them for scoring.

Model files are cached under ``$MLP_HOME/serving-cache/<model>/<version>/model.lgb``. MLflow
has no call that replaces a registered version's artifacts, so a cached file is reused. The
download writes the file atomically, so a file present in the cache is complete, and a file that
fails to load is deleted so the next attempt downloads it again.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

from mlflow import MlflowClient

from mlp_orchestration import registry
from mlp_orchestration.errors import MlpError, ModelLoadError
from mlp_orchestration.scoring import NativeModel
from mlp_orchestration.serving.core.config import cache_dir
from mlp_orchestration.serving.state import LoadedVersion
from mlp_orchestration.settings import Settings
from mlp_orchestration.warehouse import utcnow

logger = logging.getLogger(__name__)

THRESHOLD_TAG = "decision_threshold"
# Names become folder names in the cache, so they must not contain path separators.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class VersionLoader:
    """Loads model versions from the MLflow registry through a local file cache."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: MlflowClient | None = None

    def load(self, model: str, version: str) -> LoadedVersion:
        """Download (unless cached), load, warm and describe one registered version.

        Raises:
            ModelLoadError: the version cannot be downloaded, parsed or warmed.
        """
        path = self.cached_path(model, version)
        if not path.is_file():
            logger.info("downloading %s version %s from the MLflow registry", model, version)
            registry.download_native_model(self.settings, model, version, path)
        try:
            native = NativeModel.from_file(path, version=version)
            native.warm()
        except MlpError as exc:
            # The next attempt downloads again, in case the cached copy is the broken part.
            path.unlink(missing_ok=True)
            raise ModelLoadError(f"{model} version {version}: {exc}") from exc
        threshold = self._decision_threshold(model, version)
        logger.info(
            "loaded %s version %s (%d features, decision threshold %s)",
            model,
            version,
            len(native.feature_names),
            threshold,
        )
        return LoadedVersion(
            model=model,
            version=version,
            native=native,
            decision_threshold=threshold,
            loaded_at=utcnow(),
            path=str(path),
        )

    def cached_path(self, model: str, version: str) -> Path:
        for kind, name in (("model name", model), ("model version", version)):
            if not _SAFE_NAME.match(name):
                raise ModelLoadError(
                    f"{kind} {name!r} cannot be served: use letters, digits, '_', '.' or '-'"
                )
        return cache_dir(self.settings) / model / version / registry.NATIVE_MODEL_FILE

    def _decision_threshold(self, model: str, version: str) -> float | None:
        if self._client is None:
            self._client = registry.configure(self.settings)
        tags = registry.get_version(self._client, model, version).tags or {}
        raw = tags.get(THRESHOLD_TAG)
        if raw is None:
            logger.warning("%s version %s has no %s tag", model, version, THRESHOLD_TAG)
            return None
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            logger.warning(
                "%s version %s has an invalid %s tag %r; exposing none",
                model,
                version,
                THRESHOLD_TAG,
                raw,
            )
            return None
        return value
