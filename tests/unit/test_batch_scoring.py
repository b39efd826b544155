"""The batch scoring functions on small frames the tests build (no Airflow, no registry)."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from mlops_pipeline.data import storage
from mlops_pipeline.deployment.loading import LoadedVersion
from mlops_pipeline.monitoring.nightly import BATCH_PREDICTIONS, INLINE_SCORING, partition_scores
from mlops_pipeline.scoring import batch, shadow
from mlops_pipeline.scoring.readiness import covers, not_ready_reason
from mlops_pipeline.scoring.table import NoPredictionsDatabase, predictions_database_url
from tests.unit.small_usecase import small_spec

UTC = dt.UTC
T0 = dt.datetime(2025, 3, 3, tzinfo=UTC)


def _scorer(task: str = "binary_classification", threshold: float | None = 0.5) -> batch.Scorer:
    model = LoadedVersion(
        spec=small_spec(task), version="3", run_id="run-3", threshold=threshold, model=None
    )
    return batch.Scorer(model=model, feature_service="shop_signal_v1")


def _features(keys: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "shop_id": keys,
            "observed_at": [T0 + dt.timedelta(minutes=k) for k in keys],
        }
    )


def test_intervals_cover_a_partition_only_without_a_gap():
    hour = dt.timedelta(hours=1)
    start, end = T0, T0 + 24 * hour
    assert covers([(start - hour, end)], start, end)
    # Overlapping pieces in any order, one of them naive (read as UTC).
    naive = (T0 + 10 * hour).replace(tzinfo=None)
    assert covers([(naive, end + hour), (start - hour, T0 + 12 * hour)], start, end)
    assert not covers([(start, T0 + 10 * hour), (T0 + 11 * hour, end)], start, end)
    assert not covers([(start + hour, end)], start, end)
    assert not covers([], start, end)


def test_predictions_are_sorted_by_key_with_the_servers_decision_rule_and_lineage():
    scorer = _scorer(threshold=0.5)
    features = _features([3, 1, 2])
    frame = batch.predictions_frame(
        scorer.model.spec, features, np.array([0.5, 0.2, 0.9]), scorer, "scheduled__x"
    )
    assert list(frame.columns) == [
        "shop_id",
        "observed_at",
        batch.SCORE,
        batch.DECISION,
        batch.MODEL_NAME,
        batch.MODEL_VERSION,
        batch.FEATURE_SERVICE,
        batch.AIRFLOW_RUN_ID,
    ]
    assert frame["shop_id"].tolist() == [1, 2, 3]
    assert frame[batch.SCORE].tolist() == [0.2, 0.9, 0.5]
    # At the threshold is positive, as the model server answers.
    assert frame[batch.DECISION].tolist() == [False, True, True]
    assert str(frame["observed_at"].dt.tz) == "UTC"
    assert frame["observed_at"].tolist() == sorted(features["observed_at"])
    assert set(frame[batch.MODEL_VERSION]) == {"3"}
    assert set(frame[batch.MODEL_NAME]) == {scorer.model.spec.model_name}
    assert set(frame[batch.FEATURE_SERVICE]) == {"shop_signal_v1"}
    assert set(frame[batch.AIRFLOW_RUN_ID]) == {"scheduled__x"}


def test_a_regressor_has_no_decision_column():
    scorer = _scorer("regression", threshold=None)
    frame = batch.predictions_frame(
        scorer.model.spec, _features([1, 2]), np.array([3.5, 7.0]), scorer, "r"
    )
    assert batch.DECISION not in frame and frame[batch.SCORE].tolist() == [3.5, 7.0]


def test_writing_the_same_predictions_gives_the_same_bytes_and_replaces_the_file(tmp_path):
    scorer = _scorer()
    frame = batch.predictions_frame(
        scorer.model.spec, _features(list(range(1, 200))), np.linspace(0, 1, 199), scorer, "r"
    )
    first, second = tmp_path / "a" / "part.parquet", tmp_path / "b" / "part.parquet"
    digest = batch.write_predictions(first, frame)
    assert batch.write_predictions(second, frame.copy()) == digest
    assert first.read_bytes() == second.read_bytes()
    assert hashlib.sha256(first.read_bytes()).hexdigest() == digest
    assert b"pandas" not in pq.read_metadata(first).metadata  # no pandas metadata to vary
    pd.testing.assert_frame_equal(pd.read_parquet(first), frame)
    # A smaller re-score replaces the partition whole, leaving no temporary file behind.
    batch.write_predictions(first, frame.iloc[:5])
    assert len(pd.read_parquet(first)) == 5
    assert sorted(p.name for p in first.parent.iterdir()) == ["part.parquet"]


def test_score_summary_has_quantiles_and_the_positive_share():
    scores = np.array([0.1, 0.2, 0.3, 0.9])
    summary = batch.score_summary(scores, scores >= 0.25)
    assert summary["min"] == 0.1 and summary["max"] == 0.9
    assert summary["mean"] == pytest.approx(0.375)
    assert summary["p50"] == pytest.approx(0.25)
    assert summary["positive_share"] == 0.5
    assert "positive_share" not in batch.score_summary(scores, None)
    assert batch.score_summary(np.array([]), None) == {}


def test_predictions_database_defaults_to_the_feast_registrys(settings):
    production = settings.replace(
        profile="production",
        feast_registry_url=SecretStr("postgresql+psycopg://u@db:5432/feast"),
    )
    assert predictions_database_url(production) == "postgresql://u@db:5432/feast"
    own = production.replace(predictions_database_url="postgresql://p@db:5432/predictions")
    assert predictions_database_url(own) == "postgresql://p@db:5432/predictions"
    with pytest.raises(NoPredictionsDatabase, match="MLOPS_PREDICTIONS_DATABASE_URL"):
        predictions_database_url(production.replace(feast_registry_url=""))


def test_a_partition_without_validated_rows_or_features_is_not_ready(settings):
    day = dt.date(2025, 8, 3)
    assert "no validated partition 2025-08-03" in not_ready_reason(settings, day)
    with pytest.raises(batch.PartitionNotScorable, match="no validated partition"):
        batch.entity_rows(settings, day)
    folder = storage.partition_dir(settings.lake_dir, day)
    folder.mkdir(parents=True)
    storage.write_json(folder / storage.MANIFEST, {"date": "2025-08-03"})
    assert "never materialized" in not_ready_reason(settings, day)


class _Champion:
    """Scores every row 0.5: tells inline scoring apart from the predictions file."""

    version = "4"

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), 0.5)


def test_the_nightly_check_takes_the_champions_batch_predictions_in_row_order(settings):
    spec, day = settings.spec, dt.date(2025, 8, 3)
    key = spec.entity.key
    current = pd.DataFrame({key: [30, 10, 20]})
    current = current.assign(**{name: 1.0 for name in spec.feature_columns if name not in current})
    predictions = pd.DataFrame(
        {key: [10, 20, 30], batch.SCORE: [0.1, 0.2, 0.3], batch.MODEL_VERSION: ["4"] * 3}
    )
    batch.write_predictions(batch.predictions_path(settings, day), predictions)
    scores, source = partition_scores(settings, day, current, _Champion())  # type: ignore[arg-type]
    assert source == BATCH_PREDICTIONS and scores.tolist() == [0.3, 0.1, 0.2]

    # Scored by an earlier champion, or not every row: scored here instead.
    batch.write_predictions(
        batch.predictions_path(settings, day), predictions.assign(model_version="3")
    )
    assert partition_scores(settings, day, current, _Champion())[1] == INLINE_SCORING  # type: ignore[arg-type]
    batch.write_predictions(batch.predictions_path(settings, day), predictions.iloc[:2])
    scores, source = partition_scores(settings, day, current, _Champion())  # type: ignore[arg-type]
    assert source == INLINE_SCORING and scores.tolist() == [0.5] * 3


def test_psi_is_zero_for_the_same_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    champion = rng.beta(2, 5, 5_000)
    assert shadow.psi(champion, champion) == pytest.approx(0.0, abs=1e-12)
    assert shadow.psi(champion, rng.beta(2, 5, 5_000)) < 0.02
    assert shadow.psi(champion, np.clip(champion + 0.2, 0, 1)) > 0.25
    # Few distinct scores: tied quantile edges merge instead of making empty bins.
    assert shadow.psi(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.0, 1.0, 1.0, 1.0])) > 0


def test_comparison_counts_flipped_decisions_by_direction():
    champion = np.array([0.1, 0.4, 0.6, 0.9])
    challenger = np.array([0.2, 0.7, 0.3, 0.95])
    figures = shadow.compare_scores(champion, challenger, champion >= 0.5, challenger >= 0.5)
    assert figures["agreement"] == 0.5 and figures["flip_share"] == 0.5
    assert figures["flips_to_positive"] == 0.25 and figures["flips_to_negative"] == 0.25
    assert figures["mean_champion"] == pytest.approx(0.5)
    regression = shadow.compare_scores(champion, challenger)
    assert "flip_share" not in regression and "agreement" not in regression


def test_the_flip_share_gate_is_off_by_default_and_blocks_over_its_maximum():
    comparison = shadow.ShadowComparison(
        date="2025-08-09",
        rows=800,
        champion_version="1",
        challenger_version="2",
        feature_service="s",
        psi=0.1,
        score_correlation=0.9,
        mean_champion=0.3,
        mean_challenger=0.35,
        agreement=0.9,
        flip_share=0.1,
        flips_to_positive=0.06,
        flips_to_negative=0.04,
    )
    assert shadow.flip_share_check(comparison, None) is None
    check = shadow.flip_share_check(comparison, 0.05)
    assert check is not None and not check.passed and "10.0%" in check.detail
    assert shadow.flip_share_check(comparison, 0.2).passed  # type: ignore[union-attr]
    assert shadow.flip_share_check(None, 0.05).passed  # type: ignore[union-attr]
    regressor = shadow.ShadowComparison(**{**comparison.to_dict(), "flip_share": None})
    assert shadow.flip_share_check(regressor, 0.05) is None


def test_the_newest_scored_partition_is_the_latest_predictions_file(settings):
    assert shadow.newest_scored_partition(settings) is None
    scorer = _scorer()
    frame = batch.predictions_frame(scorer.model.spec, _features([1]), np.array([0.3]), scorer, "r")
    for day in (dt.date(2025, 8, 2), dt.date(2025, 8, 4)):
        batch.write_predictions(batch.predictions_path(settings, day), frame)
    (settings.batch_predictions_dir / "date=2025-08-05").mkdir()  # no file: not scored
    assert shadow.newest_scored_partition(settings) == dt.date(2025, 8, 4)


def test_each_row_takes_its_entitys_latest_source_row_at_or_before_it_to_the_nanosecond():
    import pyarrow as pa

    from mlops_pipeline.features.access import _latest_at_or_before

    keys = pa.array([1, 1, 1, 2, 3], type=pa.int64())
    times = np.array([100, 99, 250, 100, 5], dtype=np.int64)
    source_keys = pa.array([1, 1, 2, 1], type=pa.int64())
    source_times = np.array([100, 200, 101, 50], dtype=np.int64)
    match = _latest_at_or_before(keys, times, source_keys, source_times)
    # At its own time; 1 ns earlier takes the older row; a later source row is never taken.
    assert match.tolist() == [0, 3, 1, -1, -1]
