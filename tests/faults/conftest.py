"""Fixtures shared by the fault modules."""

# The embedded use case, its trained model and its online store, defined with the in-process
# server's faults and reused by the server-process faults (module-scoped: each module that
# asks builds its own, and nothing is trained beyond that one small fit).
from tests.faults.test_serving_faults import embedded, model, usecases  # noqa: F401
