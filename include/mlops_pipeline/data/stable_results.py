"""Validation results and Data Docs pages that are byte-identical on a re-run.

Re-runs: the stored validation result (``validations_dir``) of the same landed file is
byte-identical, in the same or a re-created Great Expectations project, so a re-ingested
partition changes nothing that is kept and its audit trail can be compared by hash. What Great
Expectations varies is pinned or stripped here: each expectation's id (random when its suite
is stored) is derived from the suite's name and version and the expectation's position and
name; ``meta.checkpoint_id`` and ``meta.validation_id`` (random ids of the project's objects)
are dropped; ``meta.batch_markers.ge_load_time`` (the wall clock) is dropped, in Great
Expectations' own store too, so Data Docs do not show it. ``run_time`` and
``validation_time`` are the partition's start (the caller's run id). Data Docs pages are
rewritten after rendering so they are byte-identical too: the logo's wall-clock cache-buster
(``?d=``) is removed and the random ids of collapsible sections become ids derived from their
order on the page.

The status a page shows is the platform's verdict, not the suite's: Great Expectations marks a
validation failed when any expectation fails, and a row-level expectation fails on a single
bad row, which the platform quarantines while it validates the rest of the batch (it rejects
the batch only past the bad-row budget or on a batch-level failure). A validated day would read
"Failed"; its page says "Validated" with the verdict's message, and the suite's own count of
met expectations stays in the page's statistics.
"""

from __future__ import annotations

import html as html_text
import re
import uuid
from typing import Any

from mlops_pipeline.data.expectation_outcomes import expectation_name

# The namespace of the ids the stored results and pages get instead of Great Expectations'
# random ones.
_STABLE_IDS = uuid.UUID("5f0c7f3e-2a51-4c55-9a8e-1d0b7e0f6a11")

# What Great Expectations' renderer varies from one rendering of the same result to the next:
# the logo's cache-buster (the wall clock) and the ids of collapsible sections (uuid4).
_CACHE_BUSTER = re.compile(r"\?d=\d{8}T\d{6}\.\d+Z&")
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def drop_load_time(suite_result: Any) -> bool:
    """Remove the wall clock of the run from ``suite_result``'s batch markers (the stored
    result, and Data Docs, would differ on every re-run of the same file); whether it was
    there, i.e. whether Great Expectations' stored copy must be overwritten."""
    markers = (suite_result.meta or {}).get("batch_markers") or {}
    return markers.pop("ge_load_time", None) is not None


def make_result_stable(result_json: dict[str, Any], suite_version: int) -> None:
    """Pin or strip what Great Expectations draws at random in a result: each expectation's id
    (drawn when its suite is first stored, so a new project or the first run differ) becomes
    one derived from the suite, its version, position and name; the ids of the project's
    checkpoint and validation definition (drawn when the project is created) are dropped."""
    suite = result_json.get("suite_name", "")
    for position, item in enumerate(result_json.get("results") or []):
        config = item.get("expectation_config") or {}
        label = expectation_name(str(config.get("type")), config.get("kwargs") or {})
        config["id"] = str(uuid.uuid5(_STABLE_IDS, f"{suite}/v{suite_version}/{position}/{label}"))
    meta = result_json.get("meta") or {}
    for drawn in ("checkpoint_id", "validation_id"):
        meta.pop(drawn, None)


def stable_html(html: str) -> str:
    """The page with its volatile parts made stable: each uuid becomes one derived from its
    order of appearance (so links between sections still match)."""
    html = _CACHE_BUSTER.sub("?", html)
    stable: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if found not in stable:
            stable[found] = str(uuid.uuid5(_STABLE_IDS, f"html/{len(stable)}"))
        return stable[found]

    return _UUID4.sub(replace, html)


# The overview's status line of a validation page; a run's row in the index's table data (a
# Python dict's repr: its icon cell, its run name, then its filter text); the icons of each.
_PAGE_STATUS = re.compile(
    r'(<span class="h6" >Status:</span> )<i class="fas fa-(?:times text-danger|check-circle'
    r' text-success)" aria-hidden="true"></i> (?:Failed|Succeeded)'
)
_INDEX_ROW = re.compile(
    r"\{'validation_success': '[^']*?<i class=\"(?P<icon>[^\"]*)\" ></i>[^']*', "
    r"(?P<middle>[^{}]*?'run_name': '(?P<run>[^']*)'.*?)"
    r"'_validation_success_text': '(?:Failed|Success)'"
)
_PAGE_ICONS = {"validated": "fa-check-circle text-success", "rejected": "fa-times text-danger"}
_INDEX_ICONS = {
    "validated": "fas fa-check-circle text-success ge-success-icon",
    "rejected": "fas fa-times text-danger ge-failed-icon",
}


def page_with_verdict(html: str, status: str, message: str) -> str:
    """A validation page whose status line is the platform's verdict (``status``:
    ``validated`` or ``rejected``) followed by its ``message``."""
    line = (
        f'<i class="fas {_PAGE_ICONS[status]}" aria-hidden="true"></i> {status.capitalize()}'
        f'<br> <span class="h6" >Platform verdict:</span> {html_text.escape(message)}'
    )
    return _PAGE_STATUS.sub(lambda match: match.group(1) + line, html, count=1)


def index_with_verdicts(html: str, verdicts: dict[str, str]) -> str:
    """The index page with each run's status icon and filter text taken from ``verdicts``
    (run name to status); a run without a recorded verdict keeps Great Expectations'."""

    def row(match: re.Match[str]) -> str:
        status = verdicts.get(match.group("run"))
        if status not in _INDEX_ICONS:
            return match.group(0)
        whole = match.group(0)
        start = match.start("icon") - match.start()
        end = match.end("icon") - match.start()
        whole = whole[:start] + _INDEX_ICONS[status] + whole[end:]
        return whole.removesuffix(whole[whole.rindex("'_validation_success_text'") :]) + (
            f"'_validation_success_text': '{status.capitalize()}'"
        )

    return _INDEX_ROW.sub(row, html)
