"""The platform's Airflow Assets, defined once: producers list them in ``outlets``, consumers in
``schedule``. This is one of the few modules that import Airflow.

Assets are named, not given URIs: a URI scheme makes Airflow look up a provider's normalizer
at parse time (~200 ms per DAG file), and these assets are platform events, not storage paths.
"""

from __future__ import annotations

from airflow.sdk import Asset

# Emitted by ingest_customer_activity when a day's clean rows are in the lake; `extra` carries
# the date, row and quarantine counts and the validation id.
validated_customer_activity = Asset(name="validated_customer_activity", group="data")

# Emitted by materialize_customer_features once the online store serves the interval's values;
# `extra` carries the days and the materialized interval.
customer_features_online = Asset(name="customer_features_online", group="features")

# Emitted by monitor_drift when drift is real enough to retrain; `extra` carries the reason
# and the figures behind it.
retrain_requested = Asset(name="retrain_requested", group="models")

# Emitted by train_churn_model when a new version is registered with the `challenger` alias;
# `extra` carries the model name, version and run id.
churn_model_challenger = Asset(name="churn_model_challenger", group="models")

# Every task that moves a model alias runs in this pool; its single slot serializes alias writes
# across the deploy and rollback DAGs.
ALIAS_WRITES_POOL = "model_alias_writes"
