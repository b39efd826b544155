"""Batch scoring: every partition of a use case scored with the champion, kept as a predictions
partition beside the lake.

- ``readiness``: whether a partition can be scored yet (validated, features materialized, a
  champion to score with).
- ``batch``: one partition scored on point-in-time features from the feature service and
  written as Parquet (and, in the production profile, to Postgres through ``table``).
- ``table``: the Postgres copy of the predictions, replaced per partition in one transaction.
"""
