"""A use case's declaration: every class of mistake gives an error naming its field, all the
problems of a file at once; overrides merge into the declaration."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_pipeline.failures import SpecError, UserCodeError
from mlops_pipeline.features.on_demand import add_on_demand_features
from mlops_pipeline.usecases import declared_usecases, load_usecase
from mlops_pipeline.usecases.check import check_usecase
from mlops_pipeline.usecases.gate_spec import DEFAULT_FAIRNESS
from mlops_pipeline.usecases.spec import Cadence, Duplicates, Kind, Task

REPO = Path(__file__).resolve().parents[2]

VALID: dict[str, Any] = {
    "name": "toy",
    "description": "A toy classifier for these tests.",
    "task": "binary_classification",
    "entity": {"name": "thing", "key": "thing_id"},
    "timestamp": "seen_at",
    "label": "flag",
    "dataset": "toy_rows",
    "columns": {
        "thing_id": {"kind": "int", "min": 1},
        "seen_at": {"kind": "timestamp"},
        "size": {"kind": "float", "min": 0, "max": 10},
        "count": {"kind": "int", "min": 0, "max": 100},
        "colour": {"kind": "category", "values": ["red", "blue"]},
        "shiny": {"kind": "bool", "nullable": True},
        "flag": {"kind": "bool"},
    },
    "features": {
        "views": {
            "toy_shape": {"ttl": "P2D", "features": ["size", "count"]},
            "toy_look": {"ttl": "P30D", "features": ["colour", "shiny"]},
        },
        "service": "toy_v1",
    },
    "serving": {"score_field": "flag_probability", "decision_field": "predicted_flag"},
}


def declare(root: Path, changes: dict[str, Any] | None = None, name: str = "toy") -> Path:
    """Write VALID named ``name`` with ``changes`` deep-merged (None deletes a key). Transform
    modules are imported once per use-case name and process: each such test has its own."""
    declaration = copy.deepcopy(VALID) | {"name": name}

    def merge(base: dict, change: dict) -> None:
        for key, value in change.items():
            if value is None:
                base.pop(key, None)
            elif isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value

    merge(declaration, changes or {})
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "usecase.yaml").write_text(yaml.safe_dump(declaration, sort_keys=False))
    return folder


def problems_of(folder: Path) -> str:
    with pytest.raises(SpecError) as error:
        load_usecase(folder)
    return str(error.value)


def test_a_valid_declaration_loads_with_its_derived_views(tmp_path):
    usecase = load_usecase(declare(tmp_path))
    assert usecase.task is Task.BINARY_CLASSIFICATION and usecase.is_classifier
    assert usecase.cadence is Cadence.DAILY
    assert usecase.feature_columns == ("size", "count", "colour", "shiny")
    assert usecase.categorical_features == ("colour",)
    assert usecase.boolean_features == ("shiny",)
    assert usecase.column("size").kind is Kind.FLOAT
    assert usecase.feature_views == ("toy_shape", "toy_look")
    assert usecase.model_name == "toy" and usecase.primary_metric == "roc_auc"
    assert usecase.folder == (tmp_path / "toy").resolve()


def test_null_markers_and_the_duplicates_rule_are_declared_per_use_case(tmp_path):
    usecase = load_usecase(declare(tmp_path))
    # Shipped data is one snapshot per entity and partition: the newest wins by default.
    assert usecase.entity.duplicates is Duplicates.KEEP_LATEST
    assert usecase.column("count").null_markers == ()
    declared = {
        "entity": {"duplicates": "reject"},
        "columns": {"count": {"null_markers": ["n/a", "-", "-999"]}},
    }
    usecase = load_usecase(declare(tmp_path / "declared", declared))
    assert usecase.entity.duplicates is Duplicates.REJECT
    assert usecase.column("count").null_markers == ("n/a", "-", "-999")
    assert usecase.column("count").numeric_markers == (-999.0,)


def test_an_hourly_cadence_is_declared_like_the_others(tmp_path):
    usecase = load_usecase(declare(tmp_path, {"cadence": "hourly"}))
    assert usecase.cadence is Cadence.HOURLY and usecase.cadence.cron == "0 * * * *"
    assert usecase.cadence.length == dt.timedelta(hours=1)


def test_every_shipped_use_case_is_valid():
    shipped = declared_usecases(REPO / "usecases")
    assert "churn" in shipped
    for name in shipped:
        assert load_usecase(REPO / "usecases" / name).name == name


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {"features": {"views": {"toy_shape": {"features": ["size", "count", "weight"]}}}},
            "features.views.toy_shape.features: 'weight' is not a declared column",
            id="unknown column in a view",
        ),
        pytest.param(
            {"columns": {"thing_id": {"kind": "float", "min": 1}}},
            "entity.key: column 'thing_id' is float, not int",
            id="entity key not an int column",
        ),
        pytest.param(
            {"entity": {"key": "thing_key"}},
            "entity.key: 'thing_key' is not a declared column",
            id="entity key not a column",
        ),
        pytest.param(
            {"label": "outcome"}, "label: 'outcome' is not a declared column", id="label missing"
        ),
        pytest.param(
            {"columns": {"flag": {"kind": "float"}}},
            "label: column 'flag' is float, not int or bool",
            id="classifier label not binary",
        ),
        pytest.param(
            {"serving": {"decision_field": None}},
            "serving.decision_field: a classifier needs a decision field",
            id="classifier without decision field",
        ),
        pytest.param(
            {"task": "regression", "columns": {"flag": {"kind": "float"}}},
            "serving.decision_field: a regression model has no decision",
            id="regression with a decision field",
        ),
        pytest.param(
            {"features": {"views": {"toy_look": {"features": ["colour", "shiny", "size"]}}}},
            "features.views.toy_look.features: 'size' is already in view 'toy_shape'",
            id="a feature in two views",
        ),
        pytest.param(
            {"columns": {"age": {"kind": "int", "min": 0}}},
            "features.views: columns ['age'] are in no feature view",
            id="a column in no view",
        ),
        pytest.param(
            {"columns": {"count": {"kind": "int", "values": ["1", "2"]}}},
            "columns.count: `values` are for category columns only",
            id="values on an int column",
        ),
        pytest.param(
            {"columns": {"colour": {"kind": "category", "values": ["red", "red"]}}},
            "columns.colour: `values` repeat a value",
            id="repeated values",
        ),
        pytest.param(
            {"columns": {"size": {"kind": "float", "min": 10, "max": 1}}},
            "columns.size: min 10.0 is above max 1.0",
            id="min above max",
        ),
        pytest.param(
            {"columns": {"colour": {"kind": "category", "min": 0}}},
            "columns.colour: `min`/`max` are for int and float columns only",
            id="range on a category",
        ),
        pytest.param(
            {"columns": {"size": {"kind": "decimal"}}},
            "columns.size.kind: Input should be 'int', 'float', 'category', 'bool' or 'timestamp'",
            id="unknown kind",
        ),
        pytest.param(
            {"columns": {"size": {"kind": "float", "unit": "cm"}}},
            "columns.size.unit: Extra inputs are not permitted",
            id="unknown field",
        ),
        pytest.param(
            {"cadence": "monthly"},
            "cadence: Input should be 'hourly', 'daily' or 'weekly'",
            id="unknown cadence",
        ),
        pytest.param(
            {"columns": {"thing_id": {"kind": "int", "nullable": True}}},
            "entity.key: column 'thing_id' may not be nullable",
            id="nullable entity key",
        ),
        pytest.param(
            {"segments": ["size"]},
            "segments: 'size' must be a category or bool column",
            id="numeric segment",
        ),
        pytest.param(
            {"drift": {"column_thresholds": {"weight": 0.2}}},
            "drift: overrides for ['weight'], which are not features",
            id="drift override of no feature",
        ),
        pytest.param(
            {"protected_attributes": ["size"]},
            "protected_attributes: 'size' must be a category or bool column",
            id="numeric protected attribute",
        ),
        pytest.param(
            {"gates": {"fairness": {"metric": "mae_difference"}}},
            "gates.fairness.metric: 'mae_difference' is not for binary_classification "
            "(choose equalized_odds_difference, demographic_parity_difference)",
            id="fairness metric of the other task type",
        ),
        pytest.param(
            {"gates": {"fairness": {"metric": "accuracy_difference"}}},
            "gates.fairness.metric: Input should be 'equalized_odds_difference', "
            "'demographic_parity_difference' or 'mae_difference'",
            id="unknown fairness metric",
        ),
        pytest.param(
            {"gates": {"fairness": {"max_disparity": -0.1}}},
            "gates.fairness.max_disparity: Input should be greater than or equal to 0",
            id="negative maximum disparity",
        ),
        pytest.param(
            {"gates": {"fairness": {"min_group_rows": 0}}},
            "gates.fairness.min_group_rows: Input should be greater than or equal to 1",
            id="empty fairness groups",
        ),
        pytest.param(
            {"gates": {"fairness": {"max_increase": 0.1}}},
            "gates.fairness.max_increase: Extra inputs are not permitted",
            id="unknown fairness setting",
        ),
        pytest.param(
            {"entity": {"duplicates": "keep_first"}},
            "entity.duplicates: Input should be 'keep_latest' or 'reject'",
            id="unknown duplicates rule",
        ),
        pytest.param(
            {"columns": {"seen_at": {"kind": "timestamp", "null_markers": ["n/a"]}}},
            "columns.seen_at: `null_markers` are not for the timestamp column",
            id="markers on the timestamp",
        ),
        pytest.param(
            {"columns": {"colour": {"null_markers": ["red"]}}},
            "columns.colour: `null_markers` ['red'] are also allowed `values`",
            id="a marker that is an allowed value",
        ),
        pytest.param(
            {"columns": {"count": {"null_markers": ["n/a", "n/a"]}}},
            "columns.count: `null_markers` repeat a marker",
            id="repeated marker",
        ),
        pytest.param(
            {"columns": {"count": {"null_markers": [""]}}},
            "columns.count: `null_markers`: an empty cell is always a null",
            id="empty marker",
        ),
        pytest.param(
            {"columns": {"count": {"null_markers": ["50"]}}},
            "columns.count: `null_markers`: '50' is inside the column's range",
            id="marker inside the range",
        ),
        pytest.param(
            {"columns": {"count": {"null_markers": ["-0.5"]}}},
            "columns.count: `null_markers`: '-0.5' can never be in an int column",
            id="fractional marker of an int column",
        ),
        pytest.param(
            {"columns": {"count": {"null_markers": "n/a"}}},
            "columns.count.null_markers: Input should be a valid tuple",
            id="markers not a list",
        ),
    ],
)
def test_each_mistake_names_its_field(tmp_path, changes, expected):
    message = problems_of(declare(tmp_path, changes))
    assert expected in message, message
    assert str(tmp_path / "toy" / "usecase.yaml") in message


def test_the_fairness_gate_takes_the_task_types_defaults_where_nothing_is_declared(tmp_path):
    classifier = load_usecase(declare(tmp_path, {"protected_attributes": ["colour", "shiny"]}))
    assert classifier.protected_attributes == ("colour", "shiny")
    assert classifier.gates.fairness.resolved(classifier.task) == DEFAULT_FAIRNESS[classifier.task]
    assert DEFAULT_FAIRNESS[classifier.task].max_disparity is None, "off unless declared"
    declared = {"gates": {"fairness": {"max_disparity": 0.1, "min_group_rows": 200}}}
    bounded = load_usecase(declare(tmp_path / "bounded", declared))
    policy = bounded.gates.fairness.resolved(bounded.task)
    assert (policy.max_disparity, policy.min_group_rows) == (0.1, 200)
    assert policy.metric == "equalized_odds_difference" and policy.max_abs_increase == 0.02

    regressor = {
        "task": "regression",
        "columns": {"flag": {"kind": "float"}},
        "serving": {"decision_field": None},
        "gates": {"fairness": {"max_rel_increase": 0.2}},
    }
    regression = load_usecase(declare(tmp_path / "regression", regressor))
    policy = regression.gates.fairness.resolved(regression.task)
    assert (policy.metric, policy.max_rel_increase) == ("mae_difference", 0.2)
    assert policy.max_abs_increase == DEFAULT_FAIRNESS[Task.REGRESSION].max_abs_increase


def test_every_problem_is_reported_at_once(tmp_path):
    message = problems_of(
        declare(
            tmp_path,
            {
                "label": "outcome",
                "serving": {"decision_field": None},
                "features": {"views": {"toy_shape": {"features": ["size", "count", "weight"]}}},
            },
        )
    )
    assert "4 problem(s)" in message, message
    for problem in (
        "label: 'outcome' is not",
        "serving.decision_field:",
        "features.views.toy_shape.features: 'weight'",
        "features.views: columns ['flag'] are in no feature view",
    ):
        assert f"  - {problem}" in message, message
    # A column's own inconsistency is listed with the cross-field problems.
    message = problems_of(
        declare(
            tmp_path / "column",
            {"label": "outcome", "columns": {"size": {"kind": "float", "min": 5, "max": 1}}},
        )
    )
    assert "  - columns.size: min 5.0 is above max 1.0" in message, message
    assert "  - label: 'outcome' is not" in message, message
    # Field errors come together too (the cross-checks run once the fields are valid).
    message = problems_of(
        declare(tmp_path / "fields", {"cadence": "monthly", "columns": {"size": {"kind": "x"}}})
    )
    assert (
        "2 problem(s)" in message and "  - cadence:" in message and "columns.size.kind" in message
    )


def test_bad_yaml_and_a_name_unlike_the_folder(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "usecase.yaml").write_text("name: broken\ncolumns: [unclosed\n")
    assert "not valid YAML" in problems_of(folder)
    (folder / "usecase.yaml").write_text("- just\n- a list\n")
    assert "must be a mapping of fields" in problems_of(folder)

    other = declare(tmp_path, {"name": "other"}, name="toy")
    assert "name: 'other' must be the folder's name 'toy'" in problems_of(other)
    assert "no usecase.yaml" in problems_of(tmp_path / "nowhere")


ON_DEMAND = {
    "features": {
        "on_demand": {
            "toy_ratios": {"function": "toy_ratios", "outputs": {"size_per_count": "float"}}
        }
    }
}


def test_a_transform_missing_from_transforms_py_names_the_function(tmp_path, monkeypatch):
    folder = declare(tmp_path, ON_DEMAND, name="toy_missing")
    usecase = load_usecase(folder)
    with pytest.raises(SpecError, match=r"features.on_demand needs a transforms.py"):
        usecase.transform("toy_ratios")
    (folder / "transforms.py").write_text("def something_else(inputs):\n    return {}\n")
    with pytest.raises(SpecError, match=r"transforms.py: no function 'toy_ratios'"):
        usecase.transform("toy_ratios")
    monkeypatch.setenv("MLOPS_USECASES_DIR", str(tmp_path))
    from mlops_pipeline.config import get_settings

    with pytest.raises(SpecError, match=r"features.on_demand.toy_ratios.function: .*'toy_ratios'"):
        check_usecase(get_settings(), "toy_missing")


def test_a_transform_raising_is_a_user_code_error(tmp_path, monkeypatch):
    folder = declare(tmp_path, ON_DEMAND, name="toy_raises")
    (folder / "transforms.py").write_text(
        "def toy_ratios(inputs):\n"
        "    return {'size_per_count': [s / c for s, c in zip(inputs['size'], inputs['weight'])]}\n"
    )
    usecase = load_usecase(folder)
    with pytest.raises(UserCodeError, match=r"toy_ratios\(\) raised KeyError: 'weight'"):
        add_on_demand_features(usecase, {"size": [1.0], "count": [2]})
    monkeypatch.setenv("MLOPS_USECASES_DIR", str(tmp_path))
    from mlops_pipeline.config import get_settings

    with pytest.raises(UserCodeError, match=r"raised KeyError: 'weight'"):
        check_usecase(get_settings(), "toy_raises")


def test_a_transforms_module_that_fails_to_import_is_a_user_code_error(tmp_path):
    folder = declare(tmp_path, ON_DEMAND, name="toy_import")
    (folder / "transforms.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(UserCodeError, match="failed to import: ModuleNotFoundError"):
        load_usecase(folder).transform("toy_ratios")


def test_overrides_merge_into_the_declaration(tmp_path, monkeypatch):
    folder = declare(
        tmp_path, {"training": {"min_train_rows": 500, "split": {"validation_partitions": 2}}}
    )
    usecase = load_usecase(
        folder, {"training": {"min_train_rows": 50}, "drift": {"nights_window": 5}}
    )
    assert usecase.training.min_train_rows == 50
    assert usecase.training.split.validation_partitions == 2, "siblings of an override stay"
    assert usecase.drift.nights_window == 5 and usecase.drift.nights_required == 2
    assert load_usecase(folder).training.min_train_rows == 500, "the file is unchanged"

    from mlops_pipeline.config import get_settings

    monkeypatch.setenv("MLOPS_USECASES_DIR", str(tmp_path))
    monkeypatch.setenv("MLOPS_USECASE", "toy")
    monkeypatch.setenv(
        "MLOPS_USECASE_OVERRIDES",
        json.dumps({"toy": {"training": {"min_train_rows": 60}}, "other": {"x": 1}}),
    )
    assert get_settings().spec.training.min_train_rows == 60
    monkeypatch.setenv(
        "MLOPS_USECASE_OVERRIDES", json.dumps({"toy": {"serving": {"max_batch": 0}}})
    )
    with pytest.raises(SpecError, match=r"serving.max_batch: Input should be greater than"):
        _ = get_settings().spec
