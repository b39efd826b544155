"""The use case's on-demand features, computed by its own functions (``transforms.py``).

The same functions back the Feast on-demand views, so training sets, online lookups, inline
requests and the drift check all compute these features identically.
"""

from __future__ import annotations

from typing import Any

from mlops_pipeline.failures import UserCodeError
from mlops_pipeline.usecases.loader import UseCase


def add_on_demand_features(usecase: UseCase, columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """``columns`` plus every declared on-demand output (column name -> values)."""
    result = dict(columns)
    for view, declared in usecase.features.on_demand.items():
        function = usecase.transform(declared.function)
        try:
            outputs = function(columns)
        except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError) as exc:
            raise UserCodeError(
                f"on-demand view {view!r}: {declared.function}() raised {type(exc).__name__}: {exc}"
            ) from exc
        missing = [name for name in declared.outputs if name not in outputs]
        if missing:
            raise UserCodeError(
                f"on-demand view {view!r}: {declared.function}() returned no {missing}"
            )
        result.update({name: list(outputs[name]) for name in declared.outputs})
    return result
