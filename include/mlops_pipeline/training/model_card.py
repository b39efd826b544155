"""The model card of a trained version (Markdown and HTML) and its SHAP importance plot."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_pipeline.training.model import TrainedModel, base_pipeline, model_inputs

KEY_METRICS = {
    True: ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1"),
    False: ("rmse", "mae", "r2", "label_mean"),
}
METRIC_TITLES = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "brier": "Brier",
    "f1": "F1",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
}


@dataclass
class ShapSummary:
    importance: pd.Series  # mean |SHAP| per input feature, descending
    sample_rows: int
    plot: Path


def shap_summary(trained: TrainedModel, out_dir: Path, sample_rows: int) -> ShapSummary:
    """Global importance from SHAP on a seeded sample of the test partitions.

    SHAP explains the gradient-boosted trees inside the pipeline (TreeExplainer is exact for
    trees); a classifier's calibration is monotone, so it does not change the ranking.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    spec = trained.spec
    pipeline = base_pipeline(trained.model)
    test = trained.split.test
    sample = test.sample(n=min(sample_rows, len(test)), random_state=spec.training.model.seed)
    encoded = pipeline.named_steps["encode"].transform(model_inputs(spec, sample))
    names = list(pipeline.named_steps["encode"].get_feature_names_out())
    values = np.asarray(shap.TreeExplainer(pipeline.named_steps["model"]).shap_values(encoded))
    importance = pd.Series(np.abs(values).mean(axis=0), index=names).sort_values(ascending=False)

    out_dir.mkdir(parents=True, exist_ok=True)
    plot = out_dir / "shap_importance.png"
    figure, axes = plt.subplots(figsize=(7, 5))
    importance.iloc[::-1].plot.barh(ax=axes, color="#3b6ea8")
    unit = "log-odds" if spec.is_classifier else f"units of {spec.label}"
    axes.set_xlabel(f"mean |SHAP value| ({unit})")
    axes.set_title(f"Global feature importance (SHAP, {len(sample):,} test rows)")
    figure.tight_layout()
    figure.savefig(plot, dpi=110)
    plt.close(figure)
    return ShapSummary(importance=importance, sample_rows=len(sample), plot=plot)


def _segment_table(trained: TrainedModel) -> list[str]:
    classifier = trained.spec.is_classifier
    extra = "positive rate" if classifier else "label mean"
    names = ("roc_auc", "pr_auc", "brier", "f1") if classifier else ("rmse", "mae", "r2")
    rows = [
        f"| segment | rows | {extra} | " + " | ".join(METRIC_TITLES[n] for n in names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for column, values in trained.segment_metrics.items():
        for value, row in values.items():
            base = row["positive_rate"] if classifier else row["label_mean"]
            rows.append(
                f"| {column}={value} | {int(row['rows']):,} | {base:.3f} | "
                + " | ".join(f"{row[n]:.4f}" for n in names)
                + " |"
            )
    return rows


def card_sections(
    trained: TrainedModel,
    shap: ShapSummary,
    lineage: dict[str, Any],
    serialization: str,
) -> list[tuple[str, list[str]]]:
    """The card's content once, as (heading, lines of Markdown); both formats render it."""
    spec = trained.spec
    classifier = spec.is_classifier
    metrics = trained.metrics
    split = trained.split
    windows = split.windows()
    declared = spec.training.model
    unit = f"{spec.cadence.value} partitions"
    task = "binary classification" if classifier else "regression"
    label = spec.column(spec.label).description
    if classifier:
        outcome = f"- Positive rate (test): {metrics['positive_rate']:.3f}"
        decision = [
            f"Decision threshold {trained.threshold:.4f} (maximises F1 on the validation "
            f"{unit}" + (", after calibration)." if declared.calibration != "none" else ").")
        ]
        family = "`HistGradientBoostingClassifier` (class-balanced)" + (
            f", calibrated ({declared.calibration}) on the validation {unit}."
            if declared.calibration != "none"
            else ", uncalibrated."
        )
    else:
        outcome = f"- Mean of `{spec.label}` (test): {metrics['label_mean']:.3f}"
        decision = [f"Predicts `{spec.label}` itself: no threshold, no calibration."]
        family = "`HistGradientBoostingRegressor` (squared error unless declared otherwise)."
    return [
        ("Intended use", [spec.description]),
        (
            "Task",
            [
                f"- {task.capitalize()} of `{spec.label}`" + (f": {label}" if label else ""),
                f"- One prediction per {spec.entity.name} (`{spec.entity.key}`), from data "
                f"landing in {unit}",
                f"- Owner: {spec.owner}",
            ],
        ),
        (
            "Data",
            [
                f"- Feature service: `{lineage['feature_service']}` "
                f"(views: {', '.join(lineage['feature_views'])})",
                f"- Window: {lineage['data_window']}; train {windows['train']} "
                f"({len(split.train):,} rows), validation {windows['validation']} "
                f"({len(split.validation):,}), test {windows['test']} "
                f"({len(split.test):,})",
                f"- Data version: `{lineage['data_version']}` over "
                f"{len(lineage['partitions'])} validated partitions",
                outcome,
            ],
        ),
        (
            f"Metrics on the test {unit}",
            [
                "| metric | value |",
                "|---|---|",
                *[f"| {name} | {metrics[name]:.4f} |" for name in KEY_METRICS[classifier]],
                "",
                *decision,
            ],
        ),
        (f"Metrics per segment (test {unit})", _segment_table(trained)),
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
                f"scikit-learn pipeline: ordinal encoding of categories, then {family}",
                f"- Parameters: `{dict(declared.params)}`, seed {declared.seed}",
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
                f"- Evaluated on {len(split.test_partitions)} test {unit}; populations unlike "
                "the training window need their own validation before use.",
                "- Inputs and performance may drift after training; the nightly drift check "
                "watches for that.",
                "- Segments whose test labels take a single value have no metrics above.",
                f"- The newest partitions' labels (`{spec.label}`) may be the least mature.",
            ],
        ),
    ]


def render_markdown(title: str, sections: list[tuple[str, list[str]]]) -> str:
    lines = [f"# {title}", ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", *body, ""]
    return "\n".join(lines)


def render_html(title: str, sections: list[tuple[str, list[str]]]) -> str:
    """A self-contained page of the card's Markdown, rendered by markdown-it (CommonMark and
    tables; raw HTML escaped), with the SHAP plot under its section."""
    from markdown_it import MarkdownIt

    with_plot = [
        (heading, [*body, "", "![SHAP importance](shap_importance.png)"])
        if heading.startswith("Why")
        else (heading, body)
        for heading, body in sections
    ]
    body = (
        MarkdownIt("commonmark", {"html": False})
        .enable("table")
        .render(render_markdown(title, with_plot))
    )
    return "\n".join(
        [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title>",
            "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
            "img{max-width:600px}code{background:#f4f4f4;padding:0 3px}</style>",
            "</head><body>",
            body,
            "</body></html>",
        ]
    )
