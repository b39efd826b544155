"""The platform's Airflow Assets, defined once: producers list them in ``outlets``, consumers in
``schedule``. This is one of the few modules that import Airflow."""

from __future__ import annotations

from airflow.sdk import Asset

# Emitted by ingest_customer_activity when a day's clean rows are in the lake; `extra` carries
# the date, row and quarantine counts and the validation id.
validated_customer_activity = Asset(
    name="validated_customer_activity", uri="mlops://lake/customer_activity", group="data"
)
