"""A training task's log is not a thousand lines of Airflow's deprecation warnings: skops saving
the model probes every loaded module for a function without ``__module__``, Airflow's
deprecated-module shims included."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.preprocessing import FunctionTransformer

from mlops_pipeline.training.job import skops_probing_quiet


def _skops_warnings(quiet: bool) -> list[str]:
    import airflow.utils.timezone  # noqa: F401 - loaded in every task process
    import skops.io

    # A ufunc has no ``__module__`` (the model's scipy ones neither): skops looks for it in
    # every loaded module; this one is in none, so every module is probed.
    model = FunctionTransformer(np.frompyfunc(abs, 1, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if quiet:
            with skops_probing_quiet():
                skops.io.dumps(model)
        else:
            skops.io.dumps(model)
        warnings.warn("ours still shows", FutureWarning, stacklevel=1)
    return [str(w.message) for w in caught]


def test_saving_a_model_with_skops_logs_no_airflow_deprecations():
    assert any("airflow.utils" in m for m in _skops_warnings(quiet=False)), "the noise is real"
    assert _skops_warnings(quiet=True) == ["ours still shows"]
