"""The files the view serves: reports under ``MLOPS_HOME/reports`` and model cards from MLflow,
never a path outside them."""

from __future__ import annotations

import re
import tempfile
import threading
from pathlib import Path

from mlops_pipeline.config import Settings

MODEL_CARD_DIR = "model_card"
_CARD_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def resolve_report(settings: Settings, relative: str) -> Path:
    """``relative`` under ``MLOPS_HOME/reports``, or ``FileNotFoundError``: absolute paths,
    ``..`` and symlinks leading outside are refused alike."""
    root = settings.reports_dir.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        raise FileNotFoundError(relative)
    return candidate


class ModelCards:
    """Model card files of registered versions, fetched once per run from MLflow."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._cache = cache_dir or Path(tempfile.mkdtemp(prefix="mlops-view-cards-"))
        self._lock = threading.Lock()

    def file(self, settings: Settings, version: str, name: str) -> Path:
        from mlflow.exceptions import MlflowException

        from mlops_pipeline.deployment import registry

        if not version.isdigit() or not _CARD_FILE.match(name):
            raise FileNotFoundError(name)
        tracking = registry.client(settings)
        try:
            run_id = tracking.get_model_version(settings.spec.model_name, version).run_id
        except MlflowException as exc:
            raise FileNotFoundError(version) from exc
        folder = self._cache / run_id
        with self._lock:
            if not folder.exists():
                staging = Path(tempfile.mkdtemp(dir=self._cache))
                try:
                    tracking.download_artifacts(run_id, MODEL_CARD_DIR, str(staging))
                except MlflowException as exc:
                    raise FileNotFoundError(version) from exc
                (staging / MODEL_CARD_DIR).rename(folder)
        path = (folder / name).resolve()
        if not path.is_relative_to(folder.resolve()) or not path.is_file():
            raise FileNotFoundError(name)
        return path
