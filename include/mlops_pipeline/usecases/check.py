"""``mlops-pipeline check-usecase``: a declared use case loads, validates and its transforms run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_pipeline.failures import SpecError
from mlops_pipeline.usecases.loader import DECLARATION, UseCase, declared_usecases

if TYPE_CHECKING:
    from mlops_pipeline.config import Settings

# Rows ``check-usecase`` runs the on-demand functions on.
TRANSFORM_CHECK_ROWS = 64


def check_usecase(settings: Settings, name: str) -> UseCase:
    """Load and validate a declared use case, including its transforms: raises ``SpecError``
    listing every problem, ``UserCodeError`` when transforms.py fails to import or a function
    raises on rows drawn from the contract (with the missing values serving meets)."""
    if not (settings.usecases_dir / name / DECLARATION).exists():
        declared = ", ".join(declared_usecases(settings.usecases_dir)) or "none"
        raise SpecError(
            f"no use case {name!r} under {settings.usecases_dir} (declared: {declared})"
        )
    usecase = settings.for_usecase(name).spec
    missing = []
    for view, spec in usecase.features.on_demand.items():
        try:
            usecase.transform(spec.function)
        except SpecError as exc:
            missing.append(f"features.on_demand.{view}.function: {exc}")
    if missing:
        raise SpecError("\n".join(missing))
    if usecase.features.on_demand:
        from mlops_pipeline.features.on_demand import add_on_demand_features
        from mlops_pipeline.serving.scorer import verification_sample

        sample = verification_sample(usecase, rows=TRANSFORM_CHECK_ROWS)
        add_on_demand_features(usecase, {c: sample[c] for c in usecase.feature_columns})
    return usecase


def summary(usecase: UseCase) -> str:
    """One line describing a valid use case."""
    views = len(usecase.features.views) + len(usecase.features.on_demand)
    return (
        f"{usecase.name}: valid ({usecase.task.value}, {usecase.cadence.value}; entity "
        f"{usecase.entity.key}, label {usecase.label}; {len(usecase.model_features)} features "
        f"in {views} view(s), service {usecase.features.service}; model {usecase.model_name})"
    )
