"""The use case's on-demand features, computed by its own functions (``transforms.py``).

The same functions back the Feast on-demand views, so training sets, online lookups, inline
requests and the drift check all compute these features identically.

Feast 0.67 stores a Python view's function twice, as dill bytes and as source text, and any
process reading the view from the registry rebuilds it from the *source* first, executed with
nothing but ``pd`` and ``np`` in scope: a function that calls a helper or an import of its
module would fail there with a ``NameError``. So the registry holds a stub instead
(``registry_source``), which calls ``run_registered_view`` and so the use case's function,
loaded from its folder under the platform's settings; the function's own source follows as a
comment, for reading in the registry and so that a change to it changes the definitions.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from mlops_pipeline.config import ENV_PREFIX
from mlops_pipeline.failures import UserCodeError
from mlops_pipeline.usecases.loader import UseCase


def add_on_demand_features(usecase: UseCase, columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """``columns`` plus every declared on-demand output (column name -> values)."""
    result = dict(columns)
    for view in usecase.features.on_demand:
        result.update(view_outputs(usecase, view, columns))
    return result


def view_outputs(usecase: UseCase, view: str, columns: dict[str, list[Any]]) -> dict[str, list]:
    """The declared outputs of on-demand view ``view`` for ``columns`` (name -> values)."""
    declared = usecase.features.on_demand[view]
    function = usecase.transform(declared.function)
    try:
        outputs = function(columns)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError) as exc:
        raise UserCodeError(
            f"on-demand view {view!r}: {declared.function}() raised {type(exc).__name__}: {exc}"
        ) from exc
    missing = [name for name in declared.outputs if name not in outputs]
    if missing:
        raise UserCodeError(f"on-demand view {view!r}: {declared.function}() returned no {missing}")
    return {name: list(outputs[name]) for name in declared.outputs}


# The use cases the registry's stubs ran, per (use-cases root, overrides, name) of the
# environment: building settings and finding the declaration per call would cost more than the
# rest of an online read. A process imports a use case's transforms once anyway.
_REGISTERED: dict[tuple[str | None, str | None, str], UseCase] = {}


def run_registered_view(usecase_name: str, view: str, inputs: dict[str, list]) -> dict[str, list]:
    """What the registry's stub of a view runs: the use case's function, found through the
    process's settings (``MLOPS_USECASES_DIR``, ``MLOPS_USECASE_OVERRIDES``)."""
    key = (
        os.environ.get(f"{ENV_PREFIX}USECASES_DIR"),
        os.environ.get(f"{ENV_PREFIX}USECASE_OVERRIDES"),
        usecase_name,
    )
    usecase = _REGISTERED.get(key)
    if usecase is None:
        from mlops_pipeline.config import get_settings

        usecase = _REGISTERED[key] = get_settings().for_usecase(usecase_name).spec
    return view_outputs(usecase, view, inputs)


def registry_source(usecase: UseCase, view: str) -> str:
    """The source text Feast keeps for ``view``: a stub that runs the use case's function
    (self-contained, so Feast's rebuild from source works in any process), followed by that
    function's source as a comment."""
    declared = usecase.features.on_demand[view]
    function = usecase.transform(declared.function)
    try:
        original = inspect.getsource(function)
    except (OSError, TypeError):
        original = "(source unavailable)\n"
    lines = original.splitlines(True)
    commented = "".join(f"# {line}" if line.strip() else "#\n" for line in lines)
    return (
        f"def {declared.function}(inputs):\n"
        f"    # On-demand view {view!r} of use case {usecase.name!r}: runs "
        f"{declared.function}() of its transforms.py.\n"
        "    from mlops_pipeline.features.on_demand import run_registered_view\n"
        "\n"
        f"    return run_registered_view({usecase.name!r}, {view!r}, inputs)\n"
        "\n"
        f"\n# The use case's function, as registered:\n{commented}"
    )
