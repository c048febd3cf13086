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
from mlp_orchestration.serving.contract import (
    INPUT_CONTRACT_TAG,
    ContractFormatError,
    InputContract,
)
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
        # Versions whose missing contract was logged, so reloads of a version log it once.
        self._without_contract: set[tuple[str, str]] = set()

    def load(self, model: str, version: str) -> LoadedVersion:
        """Download (unless cached), load, warm and describe one registered version.

        Raises:
            ModelLoadError: the version cannot be downloaded, parsed or warmed, or its input
                contract tag is invalid.
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
        tags = self._version_tags(model, version)
        threshold = self._decision_threshold(model, version, tags)
        contract = self._input_contract(model, version, tags, native.feature_names)
        logger.info(
            "loaded %s version %s (%d features, decision threshold %s, input contract %s)",
            model,
            version,
            len(native.feature_names),
            threshold,
            "checked" if contract is not None else "not recorded",
        )
        return LoadedVersion(
            model=model,
            version=version,
            native=native,
            decision_threshold=threshold,
            loaded_at=utcnow(),
            path=str(path),
            contract=contract,
        )

    def cached_path(self, model: str, version: str) -> Path:
        for kind, name in (("model name", model), ("model version", version)):
            if not _SAFE_NAME.match(name):
                raise ModelLoadError(
                    f"{kind} {name!r} cannot be served: use letters, digits, '_', '.' or '-'"
                )
        return cache_dir(self.settings) / model / version / registry.NATIVE_MODEL_FILE

    def _version_tags(self, model: str, version: str) -> dict[str, str]:
        if self._client is None:
            self._client = registry.configure(self.settings)
        return registry.get_version(self._client, model, version).tags or {}

    def _decision_threshold(self, model: str, version: str, tags: dict[str, str]) -> float | None:
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

    def _input_contract(
        self, model: str, version: str, tags: dict[str, str], feature_names: list[str]
    ) -> InputContract | None:
        """Parse the version's input contract, or return None when it has none recorded.

        Raises:
            ModelLoadError: the tag is present but unreadable, so the version is not served.
        """
        raw = tags.get(INPUT_CONTRACT_TAG)
        if raw is None:
            if (model, version) not in self._without_contract:
                self._without_contract.add((model, version))
                logger.warning(
                    "%s version %s has no %s tag because it was registered before training "
                    "recorded one, so it is served without range or missing-value checks",
                    model,
                    version,
                    INPUT_CONTRACT_TAG,
                )
            return None
        try:
            return InputContract.from_tag(
                raw, model=model, version=version, feature_names=feature_names
            )
        except ContractFormatError as exc:
            raise ModelLoadError(
                f"{model} version {version} has an invalid {INPUT_CONTRACT_TAG} tag: {exc}. "
                "Retrain the model, or correct the tag in the MLflow registry"
            ) from None
