"""The platform's failure taxonomy: every error a stage raises on purpose is one of two kinds.

- ``PermanentFailure``: deterministic (bad data, a bad spec, a failed gate, a user transform's
  bug). Retrying gives the same result, so the task fails at once.
- ``TransientFailure``: a dependency is down or busy (a tracking server, a database). Retrying
  may succeed, within the task's bounded retry budget.

``mlops_pipeline.orchestration.failures`` is the one adapter to Airflow's exceptions.
"""

from __future__ import annotations


class PermanentFailure(Exception):
    """Deterministic: do not retry."""


class TransientFailure(Exception):
    """A dependency failed: retry within the budget."""


class SpecError(PermanentFailure, ValueError):
    """A use-case declaration is invalid; the message lists every problem, each naming its
    field."""


class UserCodeError(PermanentFailure):
    """A use case's own Python (a feature transform) raised: a bug to fix in the use case."""
