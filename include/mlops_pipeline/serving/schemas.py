"""Request and response bodies of the model server (validated: bad payloads get a 422)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_pipeline.data import contract

MAX_BATCH = 1_000


class CustomerFeatures(BaseModel):
    """The raw features of one customer, as the data contract defines them."""

    model_config = ConfigDict(extra="forbid")

    customer_id: int | None = Field(default=None, ge=1)
    tenure_months: int = Field(ge=0, le=240)
    plan: Literal[contract.PLANS]  # type: ignore[valid-type]
    region: Literal[contract.REGIONS]  # type: ignore[valid-type]
    contract_type: Literal[contract.CONTRACTS]  # type: ignore[valid-type]
    payment_method: Literal[contract.PAYMENT_METHODS]  # type: ignore[valid-type]
    monthly_charges: float = Field(ge=0, le=500, allow_inf_nan=False)
    avg_daily_usage_minutes: float = Field(ge=0, le=1440, allow_inf_nan=False)
    support_tickets_30d: int = Field(ge=0, le=100)
    payment_failures_90d: int = Field(ge=0, le=30)
    days_since_last_login: int = Field(ge=0, le=3650)
    num_devices: int = Field(ge=1, le=50)
    autopay: bool
    paperless_billing: bool


class PredictRequest(BaseModel):
    """Either ``customer_ids`` (features from the online store) or ``instances`` (inline)."""

    model_config = ConfigDict(extra="forbid")

    customer_ids: list[int] | None = Field(default=None, min_length=1, max_length=MAX_BATCH)
    instances: list[CustomerFeatures] | None = Field(
        default=None, min_length=1, max_length=MAX_BATCH
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.customer_ids is None) == (self.instances is None):
            raise ValueError("give exactly one of `customer_ids` or `instances`")
        return self


class Prediction(BaseModel):
    customer_id: int | None
    churn_probability: float
    churn: bool


class UnknownCustomer(BaseModel):
    customer_id: int
    error: str = "unknown customer: no features in the online store"


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    threshold: float
    predictions: list[Prediction]
    unknown: list[UnknownCustomer] = []
