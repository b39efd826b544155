"""``make demo``: every declared use case's lifecycle, side by side, through Airflow.

Twelve generated partitions per use case, the same scenarios for each: clean ones, one that loses a
few rows to quarantine, one whose schema breaks (it fails whole), and covariate drift from
partway through. Each partition: ingest -> materialize -> train when due -> gated deploy, then
that night's drift check; a night that requests a retrain trains and deploys again. Each step
runs the consumer DAG on exactly the asset events its producer emitted, as the scheduler would
(``lifecycle``).

The use cases' partitions are interleaved through one embedded Airflow, so the DAG parsing and
the start-up costs are paid once. Then one table per use case, and live predictions from each
use case's own model server, by entity id (the online store) and inline (raw features)
(``report``).

    python -m mlops_pipeline.platform.demo
"""
