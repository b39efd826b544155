"""Find, load and validate use-case folders.

A use case is a folder under the use-cases root (``MLOPS_USECASES_DIR``) with a
``usecase.yaml`` and, when it declares on-demand features, a ``transforms.py`` holding their
functions. Loading is cheap (one YAML file, pydantic) because DAG files do it at parse time;
the transforms module is imported only when a stage asks for a function.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import PrivateAttr, ValidationError

from mlops_pipeline.failures import SpecError, UserCodeError
from mlops_pipeline.usecases.spec import UseCaseSpec

DECLARATION = "usecase.yaml"
TRANSFORMS = "transforms.py"


class UseCase(UseCaseSpec):
    """A validated declaration, with the folder it was read from."""

    _folder: Path = PrivateAttr()

    @property
    def folder(self) -> Path:
        return self._folder

    def transform(self, function: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """A function of the use case's ``transforms.py`` (imported once per process)."""
        module = _transforms_module(self._folder, self.name)
        try:
            return getattr(module, function)
        except AttributeError:
            raise SpecError(
                f"{self._folder / TRANSFORMS}: no function {function!r} (declared in "
                f"features.on_demand)"
            ) from None


def declared_usecases(root: Path) -> list[str]:
    """Names of the use-case folders under ``root``, sorted (the DAGs' stable order)."""
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{DECLARATION}"))


_CACHE: dict[tuple[Path, int, str], UseCase] = {}


def load_usecase(folder: Path, overrides: Mapping[str, Any] | None = None) -> UseCase:
    """The validated use case of ``folder``, with ``overrides`` merged into its declaration
    (deep merge; for operators and tests). Cached per file version."""
    path = folder / DECLARATION
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise SpecError(f"{folder}: no {DECLARATION} (is it a use-case folder?)") from None
    key = (path.resolve(), stamp, json.dumps(overrides or {}, sort_keys=True, default=str))
    if key not in _CACHE:
        _CACHE[key] = _load(path, overrides or {})
    return _CACHE[key]


def _load(path: Path, overrides: Mapping[str, Any]) -> UseCase:
    import yaml

    try:
        # libyaml's loader when present: a sixth of the pure-Python one's time at DAG parse.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        declared = yaml.load(path.read_text(), Loader=loader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(declared, dict):
        raise SpecError(f"{path}: the declaration must be a mapping of fields")
    declared = _merge(declared, overrides)
    if declared.get("name") != path.parent.name:
        raise SpecError(
            f"{path}: name: {declared.get('name')!r} must be the folder's name {path.parent.name!r}"
        )
    try:
        usecase = UseCase.model_validate(declared)
    except ValidationError as exc:
        raise SpecError(f"{path}: {_problems(exc)}") from None
    usecase._folder = path.parent.resolve()
    return usecase


def _problems(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(declaration)"
        message = problem["msg"].removeprefix("Value error, ")
        for line in message.splitlines():
            lines.append(f"  - {where}: {line}" if where != "(declaration)" else f"  - {line}")
    return f"{len(lines)} problem(s):\n" + "\n".join(lines)


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _transforms_module(folder: Path, name: str) -> Any:
    # A stable module name: Feast serializes the functions of on-demand views by reference to
    # their module, so every process must import the file under the same name.
    module_name = f"mlops_usecase_{name}_transforms"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = folder / TRANSFORMS
    if not path.exists():
        raise SpecError(f"{folder}: features.on_demand needs a {TRANSFORMS}")
    return import_usecase_module(path, module_name)


def import_usecase_module(path: Path, module_name: str) -> ModuleType:
    """Import a use case's own Python file as ``module_name`` (registered in ``sys.modules``
    only once it imported); any error it raises is the use case's, a ``UserCodeError``."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:
        del sys.modules[module_name]
        raise UserCodeError(f"{path} failed to import: {type(exc).__name__}: {exc}") from exc
    return module
