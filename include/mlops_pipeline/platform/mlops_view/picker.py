"""The view's home (``/mlops/``): the declared use cases, one row each."""

from __future__ import annotations

from typing import Any

from mlops_pipeline.platform.mlops_view.markup import document_head, escape, link, table


def render_picker(declared: list[dict[str, Any]]) -> str:
    """The view's home (``/mlops/``): one row per declared use case."""
    rows = [
        [
            link(u["url"], u["name"]),
            escape(u["model_name"]),
            escape(u["task"].replace("_", " ")),
            f"<code>{escape(u['label'])}</code>",
            escape(u["primary_metric"]),
            escape(u["cadence"]),
            escape(u["owner"]),
            escape(u["description"]),
        ]
        for u in declared
    ]
    return "".join(
        [
            document_head("MLOps"),
            "<h1>MLOps: use cases</h1>",
            "<p class='muted'>Every declared use case (<code>usecases/&lt;name&gt;/usecase.yaml"
            "</code>) · <a href='api/usecases'>JSON</a></p>",
            table(
                [
                    "use case",
                    "model",
                    "task",
                    "label",
                    "primary metric",
                    "cadence",
                    "owner",
                    "description",
                ],
                rows,
                "No use case is declared.",
            ),
            "</body></html>",
        ]
    )
