"""What ``make demo`` prints is its progress, its tables and its links: the DAG runs' own output
(task lines, library warnings, Feast's progress, Airflow's migrations) goes to the demo's log,
and a failed partition's progress line says why in one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from mlops_pipeline.platform.demo.lifecycle import unexpected
from mlops_pipeline.platform.demo.output import log_path

pytestmark = pytest.mark.e2e

ROWS = 300
# The kinds of lines the demo prints, and nothing else.
EXPECTED_LINES = {
    "intro": r"\d+ partitions of [\w, ]+ through Airflow \(task logs: /\S+\)",
    "progress": r"churn +\d{4}-\d{2}-\d{2} +\w+ +(success|failed), champion (v\d+|-), .+ "
    r"\(\d+(\.\d+)? s\)",
    "table title": r"== churn: [\w ,-]+ ==",
    "table header": r"date +scenario +dag_run .+ seconds",
    "table rule": r"[- ]+",
    "table row": r"\d{4}-\d{2}-\d{2} +\w+ +(success|failed) +.+",
    "use case": r"-- churn",
    "link": r"(Validated partitions|Validation results|Quarantine|Feature store|Drift reports"
    r"|Drift metrics|Decision records|MLflow|State summary|Task logs): +\S.*",
    "materialized": r" +\w+ +materialized \S+ \.\. \S+",
    "no champion": r"churn: no champion \(the gates promoted no model\): nothing to serve\.",
    "wall time": r"Wall time \d+ s over \d+ DAG runs .+\.",
    "blank": r"",
}


# The demo as `make demo` runs it, in a process of its own: pytest's capture would replace the
# streams the libraries hold, which the demo's redirection of the file descriptors covers.
DEMO = """
import json, sys
from mlops_pipeline.config import get_settings
from mlops_pipeline.platform.demo.__main__ import run_demo
lifecycles = run_demo(get_settings(), ["churn"], {0: "clean", 1: "schema_break", 2: "clean"})
json.dump({name: lc.rows for name, lc in lifecycles.items()}, open(sys.argv[1], "w"), default=str)
"""


def _kind(line: str) -> str | None:
    return next((k for k, p in EXPECTED_LINES.items() if re.fullmatch(p, line)), None)


def test_the_demo_prints_progress_tables_and_links_and_logs_the_rest(
    override, monkeypatch, tmp_path
):
    # Three small partitions, one of them broken: every DAG but training and deploy runs.
    monkeypatch.setenv("MLOPS_ROWS_PER_DAY", str(ROWS))
    settings = override({"churn": {"drift": {"min_partition_rows": ROWS // 2}}})
    rows_file = tmp_path / "rows.json"
    demo = subprocess.run(
        [sys.executable, "-c", DEMO, str(rows_file)],
        capture_output=True,
        text=True,
        timeout=900,
        env=os.environ.copy(),
    )
    out, err = demo.stdout, demo.stderr
    assert demo.returncode == 0, err[-3000:]
    rows = json.loads(rows_file.read_text())["churn"]
    assert unexpected(rows) == []

    assert err == ""
    lines = out.splitlines()
    assert [line for line in lines if _kind(line) is None] == []
    progress = [line for line in lines if _kind(line) == "progress"]
    assert len(progress) == 3
    # The broken partition's line says why, in its report's words.
    assert " schema_break " in progress[1] and "failed, champion -" in progress[1]
    broken = rows[1]
    assert broken["error"], "the ingestion report says why"
    assert f": {' '.join(broken['error'].split())[:100]}" in progress[1]

    # What the DAG runs printed is kept, in the log the demo names.
    log = log_path(settings.home)
    assert f"(task logs: {log})" in lines[0]
    logged = log.read_text()
    assert "validate_and_split:" in logged and "Materializing" in logged
