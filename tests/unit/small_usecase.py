"""A small hand-written use case for the serving tests: every kind of model input (bounded and
open numbers, a nullable one, categories with and without a value set, a boolean, on-demand
outputs), as a classifier or a regressor."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mlops_pipeline.deployment.loading import LoadedVersion
from mlops_pipeline.serving.champion import LoadedModel
from mlops_pipeline.serving.scorer import scorer_for, verification_sample
from mlops_pipeline.usecases.spec import UseCaseSpec

D0 = dt.date(2025, 3, 3)
MAX_BATCH = 5
TRANSFORMS = """
def shop_ratios(inputs):
    return {
        "price_per_size": [
            p / s if p is not None and s else None
            for p, s in zip(inputs["price"], inputs["size"])
        ],
        "busy": [bool(s and s > 25) for s in inputs["size"]],
    }
"""

D0 = dt.date(2025, 3, 3)
MAX_BATCH = 5


def small_declaration(task: str, calibration: str = "isotonic", name: str = "shop_signal") -> dict:
    """A hand-written use case with every kind of input: bounded and open numbers, a nullable
    one, categories with and without a value set, a boolean, and on-demand outputs."""
    classifier = task == "binary_classification"
    return {
        "name": name,
        "description": "A small use case for tests.",
        "task": task,
        "entity": {"name": "shop", "key": "shop_id"},
        "timestamp": "observed_at",
        "label": "outcome",
        "dataset": "shop_days",
        "columns": {
            "shop_id": {"kind": "int", "min": 1},
            "observed_at": {"kind": "timestamp"},
            "size": {"kind": "int", "min": 0, "max": 50},
            "price": {"kind": "float", "min": 0, "max": 100},
            "temperature": {"kind": "float", "nullable": True},
            "colour": {"kind": "category", "values": ["red", "green", "blue"]},
            "channel": {"kind": "category"},
            "promo": {"kind": "bool"},
            "outcome": {"kind": "int", "min": 0, "max": 1}
            if classifier
            else {"kind": "float", "min": 0},
        },
        "features": {
            "views": {
                "shop_facts": {
                    "ttl": "P2D",
                    "features": ["size", "price", "temperature", "colour", "channel", "promo"],
                }
            },
            "on_demand": {
                "shop_ratios": {
                    "function": "shop_ratios",
                    "outputs": {"price_per_size": "float", "busy": "bool"},
                }
            },
            "service": "shop_signal_v1",
        },
        "training": {
            "min_train_rows": 50,
            "model": {"params": {"max_iter": 30}, "calibration": calibration},
        },
        "serving": {
            "score_field": "probability" if classifier else "expected_outcome",
            "decision_field": "positive" if classifier else None,
            "max_batch": MAX_BATCH,
        },
    }


def small_spec(task: str, calibration: str = "isotonic") -> UseCaseSpec:
    return UseCaseSpec.model_validate(small_declaration(task, calibration))


def labelled_frame(spec: UseCaseSpec, rows: int = 900, seed: int = 3) -> pd.DataFrame:
    """Rows from the contract's domains over nine days, with a label the features explain."""
    frame = pd.DataFrame(verification_sample(spec, rows=rows, seed=seed))
    rng = np.random.default_rng(seed)
    frame[spec.entity.key] = np.arange(1, rows + 1)
    frame[spec.timestamp] = pd.to_datetime(
        [D0 + dt.timedelta(days=int(d)) for d in np.arange(rows) % 9]
    )
    signal = (
        frame["price"].fillna(50).clip(0, 100) / 25
        + frame["size"].fillna(0).clip(0, 50) / 10
        + (frame["colour"] == "red") * 2.0
        + frame["promo"].astype(bool) * 1.5
        + rng.normal(0, 1, rows)
    )
    if spec.is_classifier:
        frame[spec.label] = (signal > signal.median()).astype(int)
    else:
        frame[spec.label] = (signal * 10).clip(lower=0)
    return frame


def write_usecase(root: Path, declaration: dict) -> Path:
    """The declaration as a use-case folder under ``root`` (with its transforms)."""
    folder = root / declaration["name"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "usecase.yaml").write_text(yaml.safe_dump(declaration, sort_keys=False))
    (folder / "transforms.py").write_text(TRANSFORMS)
    return folder


def served_model(
    spec: UseCaseSpec, trained, version: str, alias: str = "champion", loaded_at: str = ""
) -> LoadedModel:
    """``trained`` (a ``train_model`` result) as the model server holds a registered version,
    without a registry: for the serving tests."""
    loaded = LoadedVersion(
        spec=spec,
        version=version,
        run_id="run",
        threshold=trained.threshold,
        model=trained.model,
        alias=alias,
        loaded_at=loaded_at or f"{D0.isoformat()}T00:00:00+00:00",
    )
    return LoadedModel(loaded, scorer_for(trained.model, spec), alias)
