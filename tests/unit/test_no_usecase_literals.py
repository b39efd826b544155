"""Nothing in the platform's code names a use case: every name a shipped use case declares
(its name, model, entity key, label, dataset, columns, views, service, response fields and
value sets) stays inside its folder."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

from mlops_pipeline.orchestration.dag_file import dag_file_text
from mlops_pipeline.usecases import declared_usecases, load_usecase
from mlops_pipeline.usecases.loader import UseCase

REPO = Path(__file__).resolve().parents[2]
USECASES = REPO / "usecases"
# The platform: the package, the plugins and the Feast profile repo. The DAG files named after a
# use case are that use case's entry points and are checked to be the platform's template
# (``orchestration.dag_file``) with its name filled in.
PLATFORM_FILES = sorted(
    [
        *(REPO / "include" / "mlops_pipeline").rglob("*.py"),
        *(REPO / "plugins").glob("*.py"),
        *(REPO / "feature_repo").glob("*.py"),
        *(
            path
            for path in (REPO / "dags").glob("*.py")
            if path.stem not in declared_usecases(USECASES)
        ),
    ]
)


def _names(usecase: UseCase) -> set[str]:
    """Names that must not appear anywhere in the platform, as a whole word."""
    names = usecase.declared_names() - {usecase.entity.name}
    names.update({usecase.name, usecase.model_name})
    for values in (c.values for c in usecase.columns.values()):
        names.difference_update(values or ())
    return names


def _values(usecase: UseCase) -> set[str]:
    """Allowed values of category columns: common words, so only a string literal that is
    exactly one of them counts."""
    return {v for c in usecase.columns.values() for v in (c.values or ())}


def _tokens(path: Path) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(path.read_text()).readline))


def _found(usecase: UseCase, files: list[Path]) -> list[str]:
    words = re.compile(
        r"(?<![A-Za-z0-9_])("
        + "|".join(re.escape(n) for n in sorted(_names(usecase), key=len, reverse=True))
        + r")(?![A-Za-z0-9_])"
    )
    values = _values(usecase)
    found = []
    for path in files:
        for token in _tokens(path):
            if token.type not in (tokenize.NAME, tokenize.STRING, tokenize.COMMENT):
                continue
            where = f"{path.name}:{token.start[0]}"
            for match in words.finditer(token.string):
                found.append(f"{where}: {match.group(1)!r}")
            if token.type == tokenize.STRING:
                literal = token.string.lstrip("rbfuRBFU").strip("'\"")
                if literal in values:
                    found.append(f"{where}: value {literal!r}")
    return found


@pytest.mark.parametrize("name", declared_usecases(USECASES))
def test_no_declared_name_appears_in_the_platform(name):
    found = _found(load_usecase(USECASES / name), PLATFORM_FILES)
    assert not found, f"{name}'s names in the platform's code:\n" + "\n".join(found)


@pytest.mark.parametrize("name", declared_usecases(USECASES))
def test_the_dag_file_of_a_use_case_only_calls_the_factory(name):
    # The platform's template with the name filled in, and nothing else of the use case.
    assert (REPO / "dags" / f"{name}.py").read_text() == dag_file_text(name)


def test_the_check_finds_planted_names(tmp_path):
    usecase = load_usecase(USECASES / declared_usecases(USECASES)[0])
    column = usecase.feature_columns[0]
    value = next(v for c in usecase.columns.values() for v in (c.values or ()))
    planted = tmp_path / "planted.py"
    planted.write_text(
        f'"""Docstring about {usecase.features.service}."""\n'
        f"frame[{usecase.label!r}]  # the {column} column\n"
        f"{column} = {value!r}\n"
        f'HINT = "a {value} word inside a sentence is not a value literal"\n'
    )
    found = _found(usecase, [planted])
    assert found == [
        f"planted.py:1: {usecase.features.service!r}",
        f"planted.py:2: {usecase.label!r}",
        f"planted.py:2: {column!r}",
        f"planted.py:3: {column!r}",
        f"planted.py:3: value {value!r}",
    ]
