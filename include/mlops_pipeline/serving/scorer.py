"""Scoring a few rows fast: the trained pipeline compiled to NumPy arrays.

scikit-learn's ``predict_proba`` on one row of a calibrated pipeline costs ~10 ms here, almost
all of it per-call input validation, DataFrame indexing in the ``ColumnTransformer`` and one
Python call per tree; the trees themselves are microseconds. ``CompiledScorer`` reads the fitted
objects once (ordinal categories, column order, every tree's nodes, the calibrator) and scores
by walking all trees at once with array indexing. It reproduces the pipeline's arithmetic
exactly (same comparisons, same summation order, the calibrator's own ``predict``), and
``scorer_for`` only uses it after checking that it gives the pipeline's probabilities on a
sample with unknown categories and missing values; any other model shape is scored by the
pipeline itself.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from mlops_pipeline.data import contract
from mlops_pipeline.training.model import MODEL_FEATURES, model_inputs

log = logging.getLogger(__name__)

Columns = Mapping[str, Sequence[Any]]
# Agreement required between the compiled scorer and the pipeline before it serves.
TOLERANCE = 1e-12
# Walking all trees at once costs per row what the pipeline costs per call: above this many
# rows the pipeline is faster (measured: equal near 64-100 rows for 250 trees).
COMPILED_MAX_ROWS = 64


class Scorer(Protocol):
    kind: str

    def predict_proba(self, columns: Columns) -> np.ndarray:
        """Churn probability per row of ``columns`` (feature name -> values, same length)."""
        ...


class UnsupportedModel(ValueError):
    """The model is not the shape ``CompiledScorer`` knows; score it with the pipeline."""


class PipelineScorer:
    """The model's own ``predict_proba``: always right, slow for single rows."""

    kind = "pipeline"

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict_proba(self, columns: Columns) -> np.ndarray:
        import pandas as pd

        return self.model.predict_proba(model_inputs(pd.DataFrame(dict(columns))))[:, 1]


class CompiledScorer:
    """``CalibratedClassifierCV(Pipeline([ColumnTransformer(OrdinalEncoder, passthrough),
    HistGradientBoostingClassifier]))``, binary, sigmoid or isotonic, as arrays (batches over
    ``COMPILED_MAX_ROWS`` go to the pipeline)."""

    kind = "compiled"

    def __init__(self, model: Any) -> None:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.compose import ColumnTransformer
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OrdinalEncoder

        if not isinstance(model, CalibratedClassifierCV) or len(model.calibrated_classifiers_) != 1:
            raise UnsupportedModel("expected a CalibratedClassifierCV with one calibration")
        calibrated = model.calibrated_classifiers_[0]
        if calibrated.method not in ("sigmoid", "isotonic") or len(model.classes_) != 2:
            raise UnsupportedModel(f"calibration {calibrated.method!r} / classes not binary")
        pipeline = getattr(calibrated.estimator, "estimator", calibrated.estimator)
        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            raise UnsupportedModel("expected a two-step Pipeline")
        encode, trees = pipeline.steps[0][1], pipeline.steps[1][1]
        if not isinstance(encode, ColumnTransformer) or not isinstance(
            trees, HistGradientBoostingClassifier
        ):
            raise UnsupportedModel("expected ColumnTransformer -> HistGradientBoostingClassifier")
        if trees.n_trees_per_iteration_ != 1:
            raise UnsupportedModel("expected a binary HistGradientBoostingClassifier")
        self.pipeline = PipelineScorer(model)
        self.calibrator = calibrated.calibrators[0]
        self.calibrate = _calibration(self.calibrator)
        self._encoding = _column_encoding(encode, OrdinalEncoder)
        self._compile_trees(trees)

    def _compile_trees(self, trees: Any) -> None:
        known_bitsets, feature_to_bitset = trees._bin_mapper.make_known_categories_bitsets()
        predictors = [p for iteration in trees._predictors for p in iteration]
        offsets = np.cumsum([0] + [len(p.nodes) for p in predictors[:-1]])
        nodes = np.concatenate([p.nodes for p in predictors])
        total = len(nodes)
        self.roots = offsets.astype(np.intp)
        self.baseline = float(np.asarray(trees._baseline_prediction).ravel()[0])
        self.value = nodes["value"].astype(np.float64)
        self.feature = nodes["feature_idx"].astype(np.intp)
        self.threshold = nodes["num_threshold"].astype(np.float64)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.categorical = nodes["is_categorical"].astype(bool)
        tree_of_node = np.repeat(np.arange(len(predictors)), [len(p.nodes) for p in predictors])
        left = nodes["left"].astype(np.intp) + offsets[tree_of_node]
        right = nodes["right"].astype(np.intp) + offsets[tree_of_node]
        # Leaves point at themselves, so every row can take the same number of steps.
        leaf = nodes["is_leaf"].astype(bool)
        own = np.arange(total, dtype=np.intp)
        self.left = np.where(leaf, own, left)
        self.right = np.where(leaf, own, right)
        self.steps = int(nodes["depth"].max())
        # For categorical splits, the direction of every category code, precomputed from the
        # predictor's bitsets: in the left set -> left; known -> right; unknown -> as missing.
        # Codes out of range (and NaN) take the last column, "as missing".
        self.codes = max((len(c) for c in self._encoding.categories), default=0)
        table = np.repeat(self.missing_left[:, None], self.codes + 1, axis=1)
        for node in np.flatnonzero(self.categorical):
            tree = int(tree_of_node[node])
            left_bitset = predictors[tree].raw_left_cat_bitsets[nodes["bitset_idx"][node]]
            known = known_bitsets[feature_to_bitset[self.feature[node]]]
            for code in range(self.codes):
                if _in_bitset(left_bitset, code):
                    table[node, code] = True
                elif _in_bitset(known, code):
                    table[node, code] = False
        self.category_left = table

    def encode(self, columns: Columns) -> np.ndarray:
        """The rows as the trees see them: category codes first, then the other inputs."""
        return self._encoding.encode(columns)

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        rows = np.arange(matrix.shape[0])
        node = np.repeat(self.roots[:, None], matrix.shape[0], axis=1)
        for _ in range(self.steps):
            value = matrix[rows, self.feature[node]]
            missing = np.isnan(value)
            in_range = (value >= 0) & (value < self.codes)
            code = np.where(in_range, value, self.codes).astype(np.intp)
            go_left = np.where(
                missing,
                self.missing_left[node],
                np.where(
                    self.categorical[node],
                    self.category_left[node, code],
                    value <= self.threshold[node],
                ),
            )
            node = np.where(go_left, self.left[node], self.right[node])
        # The trees added one after another onto the baseline, as scikit-learn sums them.
        leaves = np.vstack([np.full((1, matrix.shape[0]), self.baseline), self.value[node]])
        return np.cumsum(leaves, axis=0)[-1]

    def predict_proba(self, columns: Columns) -> np.ndarray:
        if len(next(iter(columns.values()))) > COMPILED_MAX_ROWS:
            return self.pipeline.predict_proba(columns)
        return self.predict_proba_compiled(columns)

    def predict_proba_compiled(self, columns: Columns) -> np.ndarray:
        probability = self.calibrate(self.raw(self.encode(columns)))
        probability[(1.0 < probability) & (probability <= 1.0 + 1e-5)] = 1.0
        return probability


class _ColumnEncoding:
    def __init__(self, categorical: list[str], categories: list[list[Any]], rest: list[str]):
        self.categorical = categorical
        self.categories = categories
        self.codes = [{value: float(i) for i, value in enumerate(c)} for c in categories]
        self.rest = rest

    def encode(self, columns: Columns) -> np.ndarray:
        rows = len(next(iter(columns.values())))
        matrix = np.empty((rows, len(self.categorical) + len(self.rest)), dtype=np.float64)
        for j, (name, codes) in enumerate(zip(self.categorical, self.codes, strict=True)):
            # model_inputs casts categories with str(): None becomes "None", an unknown value.
            matrix[:, j] = [codes.get(str(v), np.nan) for v in columns[name]]
        for j, name in enumerate(self.rest, start=len(self.categorical)):
            values = columns[name]
            if name in contract.BOOLEAN_FEATURES:
                matrix[:, j] = [bool(v) for v in values]
            else:
                matrix[:, j] = np.array(values, dtype=np.float64)  # None -> NaN
        return matrix


def _column_encoding(encode: Any, ordinal_type: type) -> _ColumnEncoding:
    names = list(encode.feature_names_in_)
    if names != list(MODEL_FEATURES):
        raise UnsupportedModel(f"model inputs {names} are not {list(MODEL_FEATURES)}")
    categorical: list[str] = []
    categories: list[list[Any]] = []
    rest: list[str] = []
    for name, transformer, selected in encode.transformers_:
        chosen = [names[i] if isinstance(i, int | np.integer) else i for i in selected]
        if name == "remainder":
            # scikit-learn stores a fitted "passthrough" as an identity FunctionTransformer.
            identity = transformer == "passthrough" or (
                type(transformer).__name__ == "FunctionTransformer" and transformer.func is None
            )
            if not identity:
                raise UnsupportedModel("expected the remaining columns passed through")
            rest += chosen
        elif isinstance(transformer, ordinal_type) and not categorical:
            if not (transformer.handle_unknown == "use_encoded_value") or not np.isnan(
                transformer.unknown_value
            ):
                raise UnsupportedModel("expected unknown categories encoded as NaN")
            categorical = chosen
            categories = [list(c) for c in transformer.categories_]
        elif transformer != "drop" and len(chosen):
            raise UnsupportedModel(f"unexpected transformer {name!r}")
    if list(encode.get_feature_names_out()) != categorical + rest:
        raise UnsupportedModel("unexpected output column order")
    return _ColumnEncoding(categorical, categories, rest)


def _calibration(calibrator: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The calibrator's ``predict`` arithmetic without its per-call input validation (which
    cost as much as walking the trees for one row): isotonic is a clip then scipy's linear
    ``interp1d``, sigmoid is ``expit``. Anything else keeps the calibrator's own ``predict``."""
    from scipy.interpolate import interp1d
    from scipy.special import expit
    from sklearn.isotonic import IsotonicRegression

    if type(calibrator).__name__ == "_SigmoidCalibration":
        slope, intercept = calibrator.a_, calibrator.b_
        return lambda raw: expit(-(slope * raw + intercept))
    if (
        isinstance(calibrator, IsotonicRegression)
        and calibrator.out_of_bounds == "clip"
        and isinstance(calibrator.f_, interp1d)
        and calibrator.f_.y.ndim == 1
    ):
        x, y = calibrator.f_.x, calibrator.f_.y
        low, high = calibrator.X_min_, calibrator.X_max_

        def isotonic(raw: np.ndarray) -> np.ndarray:
            # interp1d._call_linear, step for step (clipping keeps every value in bounds).
            clipped = np.clip(raw, low, high)
            upper = np.searchsorted(x, clipped).clip(1, len(x) - 1)
            lower = upper - 1
            slope = (y[upper] - y[lower]) / (x[upper] - x[lower])
            return slope * (clipped - x[lower]) + y[lower]

        return isotonic
    return calibrator.predict


def _in_bitset(bitset: np.ndarray, value: int) -> bool:
    return bool((int(bitset[value // 32]) >> (value % 32)) & 1)


def verification_sample(rows: int = 512, seed: int = 11) -> dict[str, list[Any]]:
    """Realistic rows plus what serving can meet: unknown and missing categories, missing
    numbers, out-of-range values."""
    from mlops_pipeline.data.datagen import generate_frame

    frame = generate_frame(dt.date(2025, 1, 15), rows=rows, seed=seed)
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {}
    for name in MODEL_FEATURES:
        if name in frame:
            values = frame[name].tolist()
        else:  # the on-demand ratios: any non-negative numbers will do
            values = (rng.gamma(2.0, 10.0, rows)).tolist()
        hit = rng.random(rows) < 0.05
        for i in np.flatnonzero(hit):
            if name in contract.CATEGORICAL_FEATURES:
                values[i] = "never-seen" if i % 2 else None
            elif name not in contract.BOOLEAN_FEATURES:
                values[i] = None if i % 2 else -values[i] * 1000 - 1
        columns[name] = values
    return columns


def scorer_for(model: Any) -> Scorer:
    """The compiled scorer when it reproduces the model on the verification sample, else the
    pipeline's own predict_proba."""
    pipeline = PipelineScorer(model)
    try:
        compiled = CompiledScorer(model)
    except UnsupportedModel as reason:
        log.info("scoring with the pipeline: %s", reason)
        return pipeline
    sample = verification_sample()
    expected = pipeline.predict_proba(sample)
    got = compiled.predict_proba_compiled(sample)
    worst = float(np.max(np.abs(expected - got)))
    if worst > TOLERANCE:
        log.warning("compiled scorer differs from the pipeline by %.3g; using the pipeline", worst)
        return pipeline
    return compiled
