"""The model server's bodies, generated from a use case's declaration."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mlops_pipeline.serving.schemas import schemas_for
from mlops_pipeline.usecases.spec import Kind, UseCaseSpec
from tests.unit.small_usecase import MAX_BATCH, small_declaration, small_spec

CLASSIFIER = small_spec("binary_classification")
REGRESSOR = small_spec("regression", "none")
SCHEMAS = schemas_for(CLASSIFIER)


def _valid(spec: UseCaseSpec, name: str):
    column = spec.column(name)
    if column.kind is Kind.CATEGORY:
        value = st.sampled_from(column.values) if column.values else st.text(max_size=8)
    elif column.kind is Kind.BOOL:
        value = st.booleans()
    elif column.kind is Kind.INT:
        value = st.integers(
            int(column.min) if column.min is not None else None,
            int(column.max) if column.max is not None else None,
        )
    else:
        value = st.floats(column.min, column.max, allow_nan=False, allow_infinity=False)
    return value | st.none() if column.nullable else value


def _instances(spec: UseCaseSpec):
    return st.fixed_dictionaries(
        {name: _valid(spec, name) for name in spec.feature_columns},
        optional={spec.entity.key: st.integers(1, 10**9)},
    )


def _invalid(spec: UseCaseSpec, name: str):
    """Values outside the column's declared domain."""
    column = spec.column(name)
    wrong_type = st.sampled_from([[], {}, "not a value"])
    if column.kind is Kind.CATEGORY:
        return wrong_type.filter(lambda v: not isinstance(v, str)) | st.text(max_size=8).filter(
            lambda v: column.values is not None and v not in column.values
        )
    if column.kind is Kind.BOOL:
        return wrong_type | st.integers(2, 100)
    outside = (
        st.sampled_from([math.inf, -math.inf, math.nan])
        if column.kind is Kind.FLOAT
        else (
            st.floats(0.1, 0.9)  # an int column takes no fractions
        )
    )
    if column.min is not None:
        outside |= st.floats(column.min - 1e6, column.min, exclude_max=True)
    if column.max is not None:
        outside |= st.floats(column.max, column.max + 1e6, exclude_min=True)
    return outside | wrong_type


@given(instances=st.lists(_instances(CLASSIFIER), min_size=1, max_size=MAX_BATCH))
def test_instances_in_the_declared_domains_are_accepted_by_their_names(instances):
    request = SCHEMAS.request.model_validate({"instances": instances})
    assert request.entities is None
    for given_row, parsed in zip(instances, request.instances, strict=True):
        dumped = parsed.model_dump(by_alias=True)
        assert set(dumped) == {CLASSIFIER.entity.key, *CLASSIFIER.feature_columns}
        assert dumped[CLASSIFIER.entity.key] == given_row.get(CLASSIFIER.entity.key)
        for name in CLASSIFIER.feature_columns:
            assert dumped[name] == given_row[name]


@given(
    instance=_instances(CLASSIFIER),
    name=st.sampled_from(CLASSIFIER.feature_columns),
    data=st.data(),
)
def test_a_value_outside_its_domain_is_rejected_naming_the_field(instance, name, data):
    bad = {**instance, name: data.draw(_invalid(CLASSIFIER, name))}
    with pytest.raises(ValidationError) as raised:
        SCHEMAS.request.model_validate({"instances": [bad]})
    assert {error["loc"][2] for error in raised.value.errors()} == {name}


@given(instance=_instances(CLASSIFIER), data=st.data())
def test_required_and_optional_fields_follow_nullable(instance, data):
    name = data.draw(st.sampled_from(CLASSIFIER.feature_columns))
    without = {k: v for k, v in instance.items() if k != name}
    if CLASSIFIER.column(name).nullable:
        parsed = SCHEMAS.request.model_validate({"instances": [without]})
        assert parsed.instances[0].model_dump(by_alias=True)[name] is None
    else:
        with pytest.raises(ValidationError, match=name):
            SCHEMAS.request.model_validate({"instances": [without]})


@given(extra=st.text(min_size=1, max_size=10).filter(lambda k: k not in CLASSIFIER.columns))
def test_undeclared_fields_are_rejected(extra):
    instance = {n: _example(CLASSIFIER, n) for n in CLASSIFIER.feature_columns}
    with pytest.raises(ValidationError):
        SCHEMAS.request.model_validate({"instances": [{**instance, extra: 1}]})


def _example(spec: UseCaseSpec, name: str):
    column = spec.column(name)
    return {
        Kind.CATEGORY: (column.values or ("any",))[0],
        Kind.BOOL: True,
        Kind.INT: int(column.min or 0),
        Kind.FLOAT: float(column.min or 0),
    }[column.kind]


@given(ids=st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=MAX_BATCH))
def test_entities_are_ids_under_the_declared_key(ids):
    request = SCHEMAS.request.model_validate({"entities": {"shop_id": ids}})
    assert request.instances is None
    assert request.entities.model_dump(by_alias=True) == {"shop_id": ids}


def test_exactly_one_bounded_source_of_features():
    instance = {n: _example(CLASSIFIER, n) for n in CLASSIFIER.feature_columns}
    for payload in (
        {},
        {"entities": {"shop_id": []}},
        {"entities": {"shop_id": list(range(MAX_BATCH + 1))}},
        {"entities": {"customer_id": [1]}},
        {"entities": {"shop_id": [1]}, "instances": [instance]},
        {"instances": []},
        {"instances": [instance] * (MAX_BATCH + 1)},
        {"instances": [{**instance, "shop_id": 0}]},  # below the entity key's min
    ):
        with pytest.raises(ValidationError):
            SCHEMAS.request.model_validate(payload)


def test_the_response_has_the_declared_fields_per_task():
    def prediction_fields(spec: UseCaseSpec) -> set[str]:
        schema = schemas_for(spec).response.model_json_schema(by_alias=True)
        (prediction,) = [d for n, d in schema["$defs"].items() if n.endswith("Prediction")]
        return set(prediction["properties"])

    assert prediction_fields(CLASSIFIER) == {"shop_id", "probability", "positive"}
    assert prediction_fields(REGRESSOR) == {"shop_id", "expected_outcome"}
    response = schemas_for(REGRESSOR).response.model_validate(
        {
            "model_name": "shop-signal",
            "model_version": "1",
            "threshold": None,
            "predictions": [{"shop_id": None, "expected_outcome": 3.5}],
        }
    )
    assert response.model_dump(mode="json") == {
        "model_name": "shop-signal",
        "model_version": "1",
        "threshold": None,
        "predictions": [{"shop_id": None, "expected_outcome": 3.5}],
        "unknown": [],
    }


def test_the_json_schema_shows_the_declared_names_and_domains():
    schema = SCHEMAS.request.model_json_schema()
    (instance,) = [d for n, d in schema["$defs"].items() if n.endswith("Instance")]
    properties = instance["properties"]
    assert set(properties) == {"shop_id", *CLASSIFIER.feature_columns}
    assert set(instance["required"]) == set(CLASSIFIER.feature_columns) - {"temperature"}
    assert properties["colour"]["enum"] == ["red", "green", "blue"]
    assert (properties["size"]["minimum"], properties["size"]["maximum"]) == (0, 50)


def test_integers_must_fit_64_bits():
    instance = {n: _example(CLASSIFIER, n) for n in CLASSIFIER.feature_columns}
    largest = 2**63 - 1
    accepted = SCHEMAS.request.model_validate({"entities": {"shop_id": [largest, -largest - 1]}})
    assert accepted.entities.model_dump(by_alias=True) == {"shop_id": [largest, -largest - 1]}
    for payload in (
        {"entities": {"shop_id": [largest + 1]}},
        {"entities": {"shop_id": [-largest - 2]}},
        {"instances": [{**instance, "shop_id": largest + 1}]},
    ):
        with pytest.raises(ValidationError, match="shop_id"):
            SCHEMAS.request.model_validate(payload)
    unbounded = UseCaseSpec.model_validate(
        {
            **small_declaration("binary_classification"),
            "columns": {
                **small_declaration("binary_classification")["columns"],
                "size": {"kind": "int"},
            },
        }
    )
    with pytest.raises(ValidationError, match="size"):
        schemas_for(unbounded).request.model_validate({"instances": [{**instance, "size": 2**63}]})
