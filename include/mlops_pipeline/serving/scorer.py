"""Scoring a few rows fast: the trained pipeline compiled to NumPy arrays.

scikit-learn's ``predict_proba`` on one row of a calibrated pipeline costs milliseconds, almost
all of it per-call input validation, DataFrame indexing in the ``ColumnTransformer`` and one
Python call per tree; the trees themselves are microseconds. ``CompiledScorer`` reads the fitted
objects once (ordinal categories, column order, every tree's nodes, the calibrator or the
loss's inverse link) and scores by walking all trees at once with array indexing. It
reproduces the pipeline's arithmetic exactly (same comparisons, same summation order, the
calibrator's own arithmetic), and ``scorer_for`` only uses it after checking that it gives the
pipeline's scores bit for bit on a sample drawn from the contract's domains, with unknown
categories, missing and out-of-range values; any other model shape is scored by the pipeline
itself.

Shapes compiled (the ones ``training.model`` builds):

- classifiers: ``CalibratedClassifierCV(Pipeline([ColumnTransformer, HistGradientBoosting
  Classifier]))`` (sigmoid or isotonic), or the uncalibrated pipeline; the score is the
  positive class' probability;
- regressors: ``Pipeline([ColumnTransformer, HistGradientBoostingRegressor])``; the score is
  the predicted value (the trees' sum through the loss' inverse link: the identity for squared
  error).

where the ``ColumnTransformer`` ordinal-encodes the categories (unknown -> NaN) and passes
every other input through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from mlops_pipeline.training.model import model_inputs
from mlops_pipeline.usecases.spec import Kind, UseCaseSpec

log = logging.getLogger(__name__)

Columns = Mapping[str, Sequence[Any]]
# Walking all trees at once costs per row about what scikit-learn's tree predictors cost per
# call: above this many rows those are faster (``score_matrix``; see docs/performance.md).
COMPILED_MAX_ROWS = 64


class Scorer(Protocol):
    kind: str

    def score(self, columns: Columns) -> np.ndarray:
        """One score per row of ``columns`` (feature name -> values, same length): the
        positive class' probability of a classifier, the predicted value of a regressor."""
        ...


class UnsupportedModel(ValueError):
    """The model is not a shape ``CompiledScorer`` knows; score it with the pipeline."""


class PipelineScorer:
    """The model's own ``predict_proba`` / ``predict``: always right, slow for single rows."""

    kind = "pipeline"

    def __init__(self, model: Any, spec: UseCaseSpec) -> None:
        self.model = model
        self.spec = spec

    def score(self, columns: Columns) -> np.ndarray:
        import pandas as pd

        inputs = model_inputs(self.spec, pd.DataFrame(dict(columns)))
        if self.spec.is_classifier:
            return self.model.predict_proba(inputs)[:, 1]
        return np.asarray(self.model.predict(inputs), dtype=np.float64)


class CompiledScorer:
    """The model as arrays (see the module docstring for the shapes); batches over
    ``COMPILED_MAX_ROWS`` go to scikit-learn's tree predictors (``score_matrix``) once
    ``scorer_for`` found them equal to the pipeline (``matrix_agrees``), else to the pipeline."""

    kind = "compiled"

    def __init__(self, model: Any, spec: UseCaseSpec) -> None:
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import OrdinalEncoder

        self.pipeline = PipelineScorer(model, spec)
        self.calibrator: Any = None  # classifiers: the fitted calibrator, if calibrated
        pipeline = self._unwrap(model, spec)
        encode, trees = pipeline.steps[0][1], pipeline.steps[1][1]
        if not isinstance(encode, ColumnTransformer):
            raise UnsupportedModel("expected a ColumnTransformer as the pipeline's first step")
        if trees.n_trees_per_iteration_ != 1:
            raise UnsupportedModel("expected one tree per iteration (binary or regression)")
        # raw -> score: the calibrator's arithmetic, or the loss' own inverse link (expit for a
        # classifier, the identity for squared error), which does no input validation.
        self.calibrate: Callable[[np.ndarray], np.ndarray] = (
            _calibration(self.calibrator)
            if self.calibrator is not None
            else trees._loss.link.inverse
        )
        self._encoding = _column_encoding(encode, OrdinalEncoder, spec)
        self._trees = trees
        self._compile_trees(trees)
        # Whether ``score_matrix`` gave the pipeline's scores bit for bit (``scorer_for``).
        self.matrix_agrees = False

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled again from the model where it is unpickled (the calibration is a closure);
        # what ``scorer_for`` verified is carried over.
        verified = {"matrix_agrees": self.matrix_agrees}
        return CompiledScorer, (self.pipeline.model, self.pipeline.spec), verified

    def _unwrap(self, model: Any, spec: UseCaseSpec) -> Any:
        """The ``Pipeline([encode, trees])`` inside ``model``, checked for the task."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
        from sklearn.pipeline import Pipeline

        estimator = HistGradientBoostingRegressor
        if spec.is_classifier:
            estimator = HistGradientBoostingClassifier
            if isinstance(model, CalibratedClassifierCV):
                if len(model.calibrated_classifiers_) != 1:
                    raise UnsupportedModel("expected a CalibratedClassifierCV with one calibration")
                calibrated = model.calibrated_classifiers_[0]
                if calibrated.method not in ("sigmoid", "isotonic") or len(model.classes_) != 2:
                    raise UnsupportedModel(
                        f"calibration {calibrated.method!r} / classes not binary"
                    )
                self.calibrator = calibrated.calibrators[0]
                model = getattr(calibrated.estimator, "estimator", calibrated.estimator)
        if not isinstance(model, Pipeline) or len(model.steps) != 2:
            raise UnsupportedModel("expected a two-step Pipeline")
        if not isinstance(model.steps[1][1], estimator):
            raise UnsupportedModel(f"expected a {estimator.__name__} as the pipeline's last step")
        if spec.is_classifier and len(model.steps[1][1].classes_) != 2:
            raise UnsupportedModel("expected a binary classifier")
        return model

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
        self._compile_bins(leaf)

    def encode(self, columns: Columns) -> np.ndarray:
        """The rows as the trees see them: category codes first, then the other inputs."""
        return self._encoding.encode(columns)

    def _compile_bins(self, leaf: np.ndarray) -> None:
        """Every split as a lookup: each input's value becomes the index of its bin between the
        thresholds the trees use on that input, and ``go_left[node, bin]`` holds the node's
        direction for every bin (its last column: missing). A step of the walk is then four
        gathers instead of a score of array operations, which is what a row costs here.

        ``v <= t`` exactly when ``v``'s bin (``searchsorted(edges, v)``, edges sorted and ending
        in +inf) is at most ``t``'s index, so the comparisons are the trees' own; a category
        code ``c`` (whole and in range, or NaN, as the encoding makes them) is bin ``c``.
        """
        inputs = len(self._encoding.categorical) + len(self._encoding.rest)
        numeric = ~leaf & ~self.categorical
        self.edges: list[np.ndarray] = []
        for column in range(inputs):
            if column < len(self._encoding.categorical):
                cuts = np.arange(self.codes, dtype=np.float64) + 0.5
            else:
                cuts = np.unique(self.threshold[numeric & (self.feature == column)])
            self.edges.append(np.unique(np.append(cuts, np.inf)))
        missing_bin = np.array([len(e) for e in self.edges], dtype=np.intp)
        width = int(missing_bin.max()) + 1
        go_left = np.zeros((len(self.feature), width), dtype=np.uint8)
        for node in np.flatnonzero(numeric):
            column = self.feature[node]
            index = int(np.searchsorted(self.edges[column], self.threshold[node]))
            go_left[node, : index + 1] = 1
        categorical = np.flatnonzero(self.categorical)
        # Bins 0..codes-1 are the codes, bin `codes` is out of range: as the category table.
        go_left[categorical, : self.codes + 1] = self.category_left[categorical]
        split = np.flatnonzero(~leaf)
        go_left[split, missing_bin[self.feature[split]]] = self.missing_left[split]
        self.go_left = go_left
        # children[node, 1] is the left child: indexed by go_left's 0 or 1.
        self.children = np.stack([self.right, self.left], axis=1)

    def bins(self, matrix: np.ndarray) -> np.ndarray:
        """Each input value's bin among its column's thresholds (NaN: the last bin)."""
        bins = np.empty(matrix.shape, dtype=np.intp)
        for column, edges in enumerate(self.edges):
            bins[:, column] = np.searchsorted(edges, matrix[:, column])
        return bins

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        bins = self.bins(matrix)
        rows = np.arange(matrix.shape[0])
        node = np.repeat(self.roots[:, None], matrix.shape[0], axis=1)
        for _ in range(self.steps):
            node = self.children[node, self.go_left[node, bins[rows, self.feature[node]]]]
        # The trees added one after another onto the baseline, as scikit-learn sums them.
        leaves = np.vstack([np.full((1, matrix.shape[0]), self.baseline), self.value[node]])
        return np.cumsum(leaves, axis=0)[-1]

    def score(self, columns: Columns) -> np.ndarray:
        if len(next(iter(columns.values()))) > COMPILED_MAX_ROWS:
            if self.matrix_agrees:
                return self.score_matrix(self.encode(columns))
            return self.pipeline.score(columns)
        return self.score_compiled(columns)

    @property
    def layout(self) -> tuple[list[str], list[list[Any]], list[str], frozenset[str]]:
        """``encode``'s columns: the categorical inputs, their categories (a code is the
        index), the other inputs, and which of those are booleans."""
        encoding = self._encoding
        return encoding.categorical, encoding.categories, encoding.rest, encoding.booleans

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Scores of many rows already in ``encode``'s layout (batch scoring): the walk above
        costs per row what the pipeline costs per call, so here scikit-learn's own tree
        predictors read the matrix, after the re-encoding of the category codes the fitted
        trees do themselves, then the same calibration as ``score_compiled``."""
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        trees = self._trees
        inputs = np.array(matrix, dtype=np.float64, order="C")
        # The trees' own OrdinalEncoder over the outer codes: a code it never saw is unknown.
        inner = trees._preprocessor
        known_codes = [] if inner is None else inner.named_transformers_["encoder"].categories_
        categorical = np.zeros(inputs.shape[1], dtype=bool)
        categorical[: len(known_codes)] = True
        if inner is not None and not np.array_equal(trees.is_categorical_, categorical):
            # Its output would put the categories first: not the layout read here.
            raise UnsupportedModel("expected the category inputs first")
        for column, known in enumerate(known_codes):
            known = np.asarray(known, dtype=np.float64)
            known = known[~np.isnan(known)]
            codes = inputs[:, column]
            present = ~np.isnan(codes)
            lookup = np.full(self.codes + 1, np.nan)
            lookup[known.astype(np.intp)] = np.arange(len(known), dtype=np.float64)
            whole = present & (codes >= 0) & (codes < self.codes) & (codes == np.floor(codes))
            recoded = np.full(len(codes), np.nan)
            recoded[whole] = lookup[codes[whole].astype(np.intp)]
            inputs[:, column] = recoded
        raw = np.zeros((len(inputs), 1), dtype=trees._baseline_prediction.dtype, order="F")
        raw += trees._baseline_prediction
        trees._predict_iterations(
            inputs, trees._predictors, raw, False, _openmp_effective_n_threads()
        )
        score = self.calibrate(raw[:, 0])
        if self.calibrator is not None:
            score[(1.0 < score) & (score <= 1.0 + 1e-5)] = 1.0
        return score

    def score_compiled(self, columns: Columns) -> np.ndarray:
        score = self.calibrate(self.raw(self.encode(columns)))
        if self.calibrator is not None:
            # CalibratedClassifierCV's own clean-up of rounding above 1.
            score[(1.0 < score) & (score <= 1.0 + 1e-5)] = 1.0
        return score


class _ColumnEncoding:
    def __init__(
        self,
        categorical: list[str],
        categories: list[list[Any]],
        rest: list[str],
        booleans: frozenset[str],
    ) -> None:
        self.categorical = categorical
        self.categories = categories
        self.codes = [{value: float(i) for i, value in enumerate(c)} for c in categories]
        self.rest = rest
        self.booleans = booleans

    def encode(self, columns: Columns) -> np.ndarray:
        rows = len(next(iter(columns.values())))
        matrix = np.empty((rows, len(self.categorical) + len(self.rest)), dtype=np.float64)
        for j, (name, codes) in enumerate(zip(self.categorical, self.codes, strict=True)):
            # model_inputs casts categories with str(): None becomes "None", an unknown value.
            matrix[:, j] = [codes.get(str(v), np.nan) for v in columns[name]]
        for j, name in enumerate(self.rest, start=len(self.categorical)):
            values = columns[name]
            if name in self.booleans:
                # Declared booleans are trusted to be booleans (or None, which is False, as
                # model_inputs' astype(bool) makes it).
                matrix[:, j] = [bool(v) for v in values]
            else:
                matrix[:, j] = np.array(values, dtype=np.float64)  # None -> NaN
        return matrix


def _column_encoding(encode: Any, ordinal_type: type[Any], spec: UseCaseSpec) -> _ColumnEncoding:
    names = list(encode.feature_names_in_)
    if names != list(spec.model_features):
        raise UnsupportedModel(f"model inputs {names} are not {list(spec.model_features)}")
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
        elif not len(chosen):
            # A transformer given no columns (a model without category inputs) is never fitted.
            continue
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
    return _ColumnEncoding(categorical, categories, rest, _boolean_inputs(spec))


def _boolean_inputs(spec: UseCaseSpec) -> frozenset[str]:
    on_demand = {
        name
        for declared in spec.features.on_demand.values()
        for name, kind in declared.outputs.items()
        if kind == "bool"
    }
    return frozenset(spec.boolean_features) | on_demand


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


def verification_sample(spec: UseCaseSpec, rows: int = 512, seed: int = 11) -> dict[str, list[Any]]:
    """Rows of the model's inputs drawn from the contract's domains (value sets, bounds, kinds;
    on-demand outputs by their declared kind), plus what serving can meet: in about one value
    in twenty, a missing value (a stale or unknown entity in the online store) or, for
    categories and numbers, a value outside the domain."""
    rng = np.random.default_rng(seed)
    kinds: dict[str, Kind] = {name: spec.column(name).kind for name in spec.feature_columns}
    for declared in spec.features.on_demand.values():
        kinds.update({name: Kind(kind) for name, kind in declared.outputs.items()})
    columns: dict[str, list[Any]] = {}
    for name in spec.model_features:
        column = spec.columns.get(name)
        low = column.min if column is not None else None
        high = column.max if column is not None else None
        kind = kinds[name]
        if kind is Kind.CATEGORY:
            domain = list(column.values) if column is not None and column.values else None
            domain = domain or [f"value_{i}" for i in range(8)]
            values: list[Any] = [domain[i] for i in rng.integers(0, len(domain), rows)]
        elif kind is Kind.BOOL:
            values = [bool(v) for v in rng.random(rows) < 0.5]
        else:
            values = _numbers(rng, rows, low, high, integer=kind is Kind.INT)
        for i in np.flatnonzero(rng.random(rows) < 0.05):
            if i % 2 or kind is Kind.BOOL:
                values[i] = None
            elif kind is Kind.CATEGORY:
                values[i] = "never-seen"
            else:  # below the domain (or, without a lower bound, far above it)
                out = (
                    (low - 1 - abs(values[i]) * 1000)
                    if low is not None
                    else ((high if high is not None else 0) + 1 + abs(values[i]) * 1000)
                )
                values[i] = int(out) if kind is Kind.INT else float(out)
        columns[name] = values
    return columns


def _numbers(
    rng: np.random.Generator, rows: int, low: float | None, high: float | None, integer: bool
) -> list[Any]:
    """Uniform within declared bounds; with an open bound, spread over many magnitudes."""
    if low is not None and high is not None:
        drawn = rng.uniform(low, high, rows)
    else:
        spread = 10.0 ** rng.uniform(-3, 4, rows)
        if low is not None:
            drawn = low + spread
        elif high is not None:
            drawn = high - spread
        else:
            drawn = spread * rng.choice([-1.0, 1.0], rows)
    if integer:
        hi = high if high is not None else np.inf
        lo = low if low is not None else -np.inf
        return [int(v) for v in np.clip(np.round(drawn), lo, hi)]
    return [float(v) for v in drawn]


def scorer_for(model: Any, spec: UseCaseSpec) -> Scorer:
    """The compiled scorer when it gives the pipeline's scores bit for bit on the
    verification sample, else the pipeline itself; its batch entry point (``score_matrix``)
    scores large batches only if it does too."""
    pipeline = PipelineScorer(model, spec)
    try:
        compiled = CompiledScorer(model, spec)
    except UnsupportedModel as reason:
        log.info("scoring with the pipeline: %s", reason)
        return pipeline
    sample = verification_sample(spec)
    expected = pipeline.score(sample)
    got = compiled.score_compiled(sample)
    if not np.array_equal(expected, got):
        worst = float(np.max(np.abs(expected - got)))
        log.warning("compiled scorer differs from the pipeline by %.3g; using the pipeline", worst)
        return pipeline
    try:
        batch = compiled.score_matrix(compiled.encode(sample))
    except UnsupportedModel as reason:
        log.info("large batches scored with the pipeline: %s", reason)
        return compiled
    compiled.matrix_agrees = bool(np.array_equal(expected, batch))
    if not compiled.matrix_agrees:
        log.warning("the tree predictors differ from the pipeline: it scores large batches")
    return compiled
