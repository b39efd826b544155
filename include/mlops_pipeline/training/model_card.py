"""The model card of a trained version (Markdown and HTML) and its SHAP importance plot."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_pipeline.training.model import TrainedModel, model_inputs

KEY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1")


@dataclass
class ShapSummary:
    importance: pd.Series  # mean |SHAP| per input feature, descending
    sample_rows: int
    plot: Path


def shap_summary(trained: TrainedModel, out_dir: Path, sample_rows: int) -> ShapSummary:
    """Global importance from SHAP on a seeded sample of the test days.

    SHAP explains the gradient-boosted trees inside the calibrated pipeline (TreeExplainer is
    exact for trees); calibration is monotone, so it does not change the ranking.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    pipeline = trained.model.calibrated_classifiers_[0].estimator.estimator
    test = trained.split.test
    sample = test.sample(n=min(sample_rows, len(test)), random_state=trained.params.seed)
    encoded = pipeline.named_steps["encode"].transform(model_inputs(sample))
    names = list(pipeline.named_steps["encode"].get_feature_names_out())
    values = shap.TreeExplainer(pipeline.named_steps["model"]).shap_values(encoded)
    importance = pd.Series(np.abs(values).mean(axis=0), index=names).sort_values(ascending=False)

    out_dir.mkdir(parents=True, exist_ok=True)
    plot = out_dir / "shap_importance.png"
    figure, axes = plt.subplots(figsize=(7, 5))
    importance.iloc[::-1].plot.barh(ax=axes, color="#3b6ea8")
    axes.set_xlabel("mean |SHAP value| (log-odds)")
    axes.set_title(f"Global feature importance (SHAP, {len(sample):,} test rows)")
    figure.tight_layout()
    figure.savefig(plot, dpi=110)
    plt.close(figure)
    return ShapSummary(importance=importance, sample_rows=len(sample), plot=plot)


def card_sections(
    trained: TrainedModel,
    shap: ShapSummary,
    lineage: dict[str, Any],
    serialization: str,
) -> list[tuple[str, list[str]]]:
    """The card's content once, as (heading, lines of Markdown); both formats render it."""
    metrics = trained.metrics
    split = trained.split
    segments = []
    for column, values in trained.segment_metrics.items():
        for value, row in values.items():
            segments.append(
                f"| {column}={value} | {int(row['rows']):,} | {row['positive_rate']:.3f} | "
                f"{row['roc_auc']:.3f} | {row['pr_auc']:.3f} | {row['brier']:.4f} | "
                f"{row['f1']:.3f} |"
            )
    return [
        (
            "Intended use",
            [
                "Ranks subscribers by their probability of churning within 30 days, for "
                "retention outreach. Not for pricing, credit or any decision about a single "
                "person without human review.",
            ],
        ),
        (
            "Data",
            [
                f"- Feature service: `{lineage['feature_service']}` "
                f"(views: {', '.join(lineage['feature_views'])})",
                f"- Window: {lineage['data_window']}; train {split.windows()['train']} "
                f"({len(split.train):,} rows), validation {split.windows()['validation']} "
                f"({len(split.validation):,}), test {split.windows()['test']} "
                f"({len(split.test):,})",
                f"- Data version: `{lineage['data_version']}` over "
                f"{len(lineage['partitions'])} validated partitions",
                f"- Positive rate (test): {metrics['positive_rate']:.3f}",
            ],
        ),
        (
            "Metrics on the test days",
            [
                "| metric | value |",
                "|---|---|",
                *[f"| {name} | {metrics[name]:.4f} |" for name in KEY_METRICS],
                "",
                f"Decision threshold {trained.threshold:.4f} (maximises F1 on the validation "
                "days, after calibration).",
            ],
        ),
        (
            "Metrics per segment (test days)",
            [
                "| segment | rows | positive rate | ROC AUC | PR AUC | Brier | F1 |",
                "|---|---|---|---|---|---|---|",
                *segments,
            ],
        ),
        (
            "Why it predicts what it predicts",
            [
                f"SHAP global importance on {shap.sample_rows:,} test rows "
                "(`shap_importance.png`). Top features:",
                *[
                    f"{rank}. `{name}` ({value:.3f})"
                    for rank, (name, value) in enumerate(shap.importance.head(8).items(), 1)
                ],
            ],
        ),
        (
            "Model",
            [
                "scikit-learn pipeline: ordinal encoding of categories, then "
                "`HistGradientBoostingClassifier` (class-balanced), calibrated "
                f"({trained.params.calibration}) on the validation days.",
                f"- Parameters: `{trained.params.to_dict()}`",
                f"- Serialization: {serialization}",
            ],
        ),
        (
            "Lineage",
            [f"- `{key}`: {value}" for key, value in sorted(lineage["tags"].items())],
        ),
        (
            "Known limitations",
            [
                "- Trained on generated subscription data; real populations need their own "
                "validation before use.",
                "- Calibrated on three days: probabilities on much larger or different "
                "populations may drift; the nightly drift check watches for that.",
                "- Segments with a single label class in the test days have no metrics above.",
                "- The label (churn within 30 days) lags: the newest days' labels are the "
                "least mature.",
            ],
        ),
    ]


def render_markdown(title: str, sections: list[tuple[str, list[str]]]) -> str:
    lines = [f"# {title}", ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", *body, ""]
    return "\n".join(lines)


def render_html(title: str, sections: list[tuple[str, list[str]]]) -> str:
    """A self-contained page: tables stay tables, lists stay lists, everything else a paragraph."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
    ]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        table: list[list[str]] = []
        for line in [*body, ""]:
            if line.startswith("|"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                if not set("".join(cells)) <= {"-"}:
                    table.append(cells)
                continue
            if table:
                head, *rows = table
                parts.append(
                    "<table><tr>"
                    + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                    + "</tr>"
                    + "".join(
                        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                        for row in rows
                    )
                    + "</table>"
                )
                table = []
            if line:
                parts.append(f"<p>{html.escape(line)}</p>")
        if heading.startswith("Why"):
            parts.append("<img src='shap_importance.png' alt='SHAP importance' width='600'>")
    parts.append("</body></html>")
    return "\n".join(parts)
