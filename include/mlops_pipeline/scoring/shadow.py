"""Shadow scoring in batch: before the gate decision, the challenger scores the newest partition
the champion scored (the batch predictions), on the same entities and point-in-time features,
and the two are compared.

The comparison is what a holdout cannot show: how differently the challenger would act on the
latest real inputs. It reports the agreement of the decisions and the share of flipped ones for
a classifier (split by direction), the shift of the score distribution (PSI, binned on the
champion's deciles) and the correlation of the scores. One optional gate uses it: a maximum
share of flipped decisions, off unless a maximum is given.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mlops_pipeline.config import Settings
from mlops_pipeline.data import storage
from mlops_pipeline.usecases.vocabulary import partition_key

if TYPE_CHECKING:
    import numpy as np

    from mlops_pipeline.deployment.gates import Check
    from mlops_pipeline.scoring.batch import Scorer

PSI_BINS = 10
# Keeps an empty bin's share from making the PSI infinite (the usual floor).
PSI_FLOOR = 1e-4
FLIP_SHARE_CHECK = "shadow_flip_share"


@dataclass(frozen=True)
class ShadowComparison:
    date: str
    rows: int
    champion_version: str
    challenger_version: str
    feature_service: str
    psi: float
    score_correlation: float | None
    mean_champion: float
    mean_challenger: float
    # Classifiers only (None for a regressor): shares of the partition's rows.
    agreement: float | None = None
    flip_share: float | None = None
    flips_to_positive: float | None = None
    flips_to_negative: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def newest_scored_partition(settings: Settings) -> dt.date | None:
    """The newest partition with batch predictions, None before the first one is scored."""
    from mlops_pipeline.scoring.batch import PREDICTIONS_FILE

    root = settings.batch_predictions_dir
    days = [
        d
        for d in storage.partition_days(root)
        if (storage.partition_dir(root, d) / PREDICTIONS_FILE).exists()
    ]
    return max(days) if days else None


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of ``actual`` against ``expected``, on ``expected``'s
    quantile bins (ties merged, so a few distinct scores still bin sensibly)."""
    import numpy as np

    expected = np.asarray(expected, dtype="float64")
    actual = np.asarray(actual, dtype="float64")
    if len(expected) == 0 or len(actual) == 0:
        return 0.0
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1))[1:-1])
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1)
    e_share = np.maximum(e / len(expected), PSI_FLOOR)
    a_share = np.maximum(a / len(actual), PSI_FLOOR)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def compare_scores(
    champion: np.ndarray,
    challenger: np.ndarray,
    champion_decisions: np.ndarray | None = None,
    challenger_decisions: np.ndarray | None = None,
) -> dict[str, float | None]:
    """The comparison's figures for two aligned score arrays, and for a classifier their
    decisions (each model's with its own threshold, as it would serve)."""
    import numpy as np

    champion = np.asarray(champion, dtype="float64")
    challenger = np.asarray(challenger, dtype="float64")
    rows = len(champion)
    varied = rows > 1 and np.std(champion) > 0 and np.std(challenger) > 0
    figures: dict[str, float | None] = {
        "psi": psi(champion, challenger),
        "score_correlation": float(np.corrcoef(champion, challenger)[0, 1]) if varied else None,
        "mean_champion": float(np.mean(champion)) if rows else 0.0,
        "mean_challenger": float(np.mean(challenger)) if rows else 0.0,
    }
    if champion_decisions is not None and challenger_decisions is not None and rows:
        before = np.asarray(champion_decisions, dtype=bool)
        after = np.asarray(challenger_decisions, dtype=bool)
        figures |= {
            "agreement": float(np.mean(before == after)),
            "flip_share": float(np.mean(before != after)),
            "flips_to_positive": float(np.mean(~before & after)),
            "flips_to_negative": float(np.mean(before & ~after)),
        }
    return figures


def shadow_compare(
    settings: Settings, challenger: Scorer, partition: dt.date | None = None
) -> ShadowComparison | None:
    """Score the newest scored partition (or ``partition``) with ``challenger`` beside the
    champion's batch predictions of it; None when no partition was scored yet."""
    from mlops_pipeline.scoring.batch import (
        DECISION,
        MODEL_VERSION,
        SCORE,
        read_predictions,
        score_entities,
    )

    spec = settings.spec
    partition = partition or newest_scored_partition(settings)
    if partition is None:
        return None
    champion = read_predictions(settings, partition)
    if champion is None or champion.empty:
        return None
    entities = champion[[spec.entity.key, spec.timestamp]]
    shadow = score_entities(settings, entities, challenger, "shadow")
    # Both frames are sorted by key; join on it all the same.
    aligned = champion.merge(
        shadow[[spec.entity.key, SCORE]], on=spec.entity.key, suffixes=("", "_challenger")
    )
    scores = aligned[f"{SCORE}_challenger"].to_numpy()
    threshold = challenger.model.threshold
    classifier = DECISION in aligned and threshold is not None
    figures = compare_scores(
        aligned[SCORE].to_numpy(),
        scores,
        aligned[DECISION].to_numpy() if classifier else None,
        scores >= threshold if classifier and threshold is not None else None,
    )
    return ShadowComparison(
        date=partition_key(partition),
        rows=len(aligned),
        champion_version=str(champion[MODEL_VERSION].iloc[0]),
        challenger_version=challenger.model.version,
        feature_service=challenger.feature_service,
        **figures,  # type: ignore[arg-type]
    )


def flip_share_check(
    comparison: ShadowComparison | None, max_flip_share: float | None
) -> Check | None:
    """The optional gate: the challenger may flip at most ``max_flip_share`` of the newest
    scored partition's decisions. None when the gate is off (no maximum) or cannot apply (a
    regressor); with no scored partition yet it passes and says so."""
    from mlops_pipeline.deployment.gates import Check

    if max_flip_share is None:
        return None
    if comparison is None:
        return Check(FLIP_SHARE_CHECK, None, max_flip_share, True, "no scored partition yet")
    if comparison.flip_share is None:
        return None
    passed = comparison.flip_share <= max_flip_share
    detail = (
        f"flips {comparison.flip_share:.1%} of the decisions on {comparison.date} "
        f"({comparison.rows} rows) against at most {max_flip_share:.1%}"
    )
    return Check(FLIP_SHARE_CHECK, comparison.flip_share, max_flip_share, passed, detail)
