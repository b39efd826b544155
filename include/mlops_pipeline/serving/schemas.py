"""Request and response bodies of the model server, generated from the use case's declaration.

Every instance field is a contract feature with its declared kind and domain (bounds, value
set, finite numbers; optional only when the column is nullable), so a bad payload gets a 422
naming the field before it reaches the model, and ``/docs`` shows the use case's own field
names. Declared names are field aliases: a column may be named like a pydantic attribute
(``json``, ``model_x``) without shadowing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from mlops_pipeline.usecases.spec import ColumnSpec, Kind, UseCaseSpec

UNKNOWN_ENTITY = "unknown {entity}: no features in the online store"

# Entity ids and integer features are 64-bit in the online store and in the model's arrays: a
# larger integer would pass a plain ``int`` field and fail there instead of here.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), serialize_by_alias=True)


class _PredictRequest(_Body):
    """Either ``entities`` (features from the online store, Feast's request shape) or
    ``instances`` (raw features inline)."""

    entities: Any = None
    instances: Any = None

    @model_validator(mode="after")
    def _exactly_one(self) -> _PredictRequest:
        if (self.entities is None) == (self.instances is None):
            raise ValueError("give exactly one of `entities` or `instances`")
        return self


@dataclass(frozen=True)
class ServingSchemas:
    """The generated models of one use case."""

    instance: type[BaseModel]  # raw contract features of one entity (+ optional entity key)
    entities: type[BaseModel]  # {"<entity key>": [ids]}
    request: type[BaseModel]  # fields ``entities`` and ``instances``
    prediction: type[BaseModel]
    unknown: type[BaseModel]
    response: type[BaseModel]


def schemas_for(spec: UseCaseSpec) -> ServingSchemas:
    prefix = "".join(part.capitalize() for part in spec.name.split("_"))
    key, entity, batch = spec.entity.key, spec.entity.name, spec.serving.max_batch

    # Built at runtime: ``Any`` so they can parametrize annotations below (``list[instance]``).
    instance: Any = _model(
        f"{prefix}Instance",
        f"The raw features of one {entity}, as the data contract declares them.",
        {
            key: (int | None, {"default": None, **_int64_bounds(spec.column(key))}),
            **{name: _feature(spec.column(name)) for name in spec.feature_columns},
        },
    )
    entities: Any = _model(
        f"{prefix}Entities",
        f"The {entity}s to score with their features from the online store.",
        # Only the store's range: an id outside the declared domain is simply unknown there.
        {key: (list[_Int64], {"min_length": 1, "max_length": batch})},
    )
    request = create_model(
        f"{prefix}PredictRequest",
        __base__=_PredictRequest,
        __doc__=_PredictRequest.__doc__,
        entities=(entities | None, Field(default=None)),
        instances=(list[instance] | None, Field(default=None, min_length=1, max_length=batch)),
    )
    score = (
        "Probability of the positive class." if spec.is_classifier else f"Predicted {spec.label}."
    )
    outputs: dict[str, tuple[Any, dict[str, Any]]] = {
        key: (int | None, {}),
        spec.serving.score_field: (float, {"description": score}),
    }
    if spec.serving.decision_field is not None:
        outputs[spec.serving.decision_field] = (
            bool,
            {"description": "Whether the score is at or above the model's threshold."},
        )
    prediction: Any = _model(f"{prefix}Prediction", "One scored row.", outputs)
    unknown: Any = _model(
        f"{prefix}Unknown",
        f"A requested {entity} the online store has no features for.",
        {key: (int, {}), "error": (str, {"default": UNKNOWN_ENTITY.format(entity=entity)})},
    )
    response = _model(
        f"{prefix}PredictResponse",
        f"Scores of {spec.model_name}.",
        {
            "model_name": (str, {}),
            "model_version": (str, {}),
            "threshold": (
                float | None,
                {"description": "The decision threshold (null for a regression model)."},
            ),
            "predictions": (list[prediction], {}),
            "unknown": (list[unknown], {"default_factory": list}),
        },
    )
    return ServingSchemas(instance, entities, request, prediction, unknown, response)


def _model(name: str, doc: str, fields: dict[str, tuple[Any, dict[str, Any]]]) -> type[BaseModel]:
    """A model whose fields are known by their declared names (``f<i>`` in Python)."""
    aliased: dict[str, Any] = {
        f"f{i}": (annotation, Field(alias=field, **options))
        for i, (field, (annotation, options)) in enumerate(fields.items())
    }
    return create_model(name, __base__=_Body, __doc__=doc, **aliased)


def _bounds(column: ColumnSpec) -> dict[str, Any]:
    # Whole bounds for an int column (the OpenAPI shows 0, not 0.0).
    integer = column.kind is Kind.INT
    bounds: dict[str, Any] = {}
    if column.min is not None:
        bounds["ge"] = math.ceil(column.min) if integer else column.min
    if column.max is not None:
        bounds["le"] = math.floor(column.max) if integer else column.max
    return bounds


def _int64_bounds(column: ColumnSpec) -> dict[str, Any]:
    """The column's declared bounds, narrowed to what a 64-bit integer holds."""
    bounds = _bounds(column)
    return {
        "ge": max(bounds.get("ge", INT64_MIN), INT64_MIN),
        "le": min(bounds.get("le", INT64_MAX), INT64_MAX),
    }


def _feature(column: ColumnSpec) -> tuple[Any, dict[str, Any]]:
    options: dict[str, Any] = {"description": column.description or None}
    if column.kind is Kind.CATEGORY:
        annotation: Any = Literal[column.values] if column.values else str
    elif column.kind is Kind.BOOL:
        annotation = bool
    elif column.kind is Kind.INT:
        annotation, options = int, {**options, **_int64_bounds(column)}
    elif column.kind is Kind.FLOAT:
        annotation, options = float, {**options, **_bounds(column), "allow_inf_nan": False}
    else:
        raise ValueError(f"column kind {column.kind} is not a model feature")
    if column.nullable:
        return annotation | None, {**options, "default": None}
    return annotation, options
