"""Data Docs after real ingestions: every page loads its styles, scripts and images from the
site itself (production networks block the CDNs Great Expectations' templates name), and the
status each page shows is the platform's verdict, not the suite's pass/fail."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mlops_pipeline.data import storage
from mlops_pipeline.data.data_docs_assets import offline_html
from mlops_pipeline.data.datagen import generate_frame, write_landing_file
from mlops_pipeline.data.ingestion import BatchRejected, ingest_day
from mlops_pipeline.data.stable_results import index_with_verdicts, page_with_verdict

VALIDATED, REJECTED = dt.date(2025, 6, 2), dt.date(2025, 6, 3)
ROWS = 120

# What a browser loads by itself: scripts, stylesheets, images, and CSS url()s. Anchors (<a>)
# are links a reader chooses to follow and may point outside.
_LOADED = re.compile(
    r"<(?:script|img)\b[^>]*?\bsrc=\"(?P<src>[^\"]+)\""
    r"|<link\b[^>]*?\bhref=\"(?P<href>[^\"]+)\""
    r"|url\(['\"]?(?P<url>[^'\")]+)['\"]?\)"
)


def land(settings, day: dt.date, out_of_range: int) -> None:
    """A landing file of ``day`` whose first ``out_of_range`` rows fail a row-level
    expectation (quarantined, or rejecting the batch past the budget)."""
    frame = generate_frame(settings.spec, day, ROWS)
    frame.loc[: out_of_range - 1, "monthly_charges"] = -1.0
    write_landing_file(frame, storage.landing_file(settings, day, "csv"), settings.spec.timestamp)


def loaded(page: Path) -> list[str]:
    """Every URL ``page`` (and the local stylesheets it loads) makes the browser fetch."""
    found = []
    for match in _LOADED.finditer(page.read_text()):
        url = match.group("src") or match.group("href") or match.group("url")
        if not url.startswith("data:"):
            found.append(url)
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One validated day (a row quarantined) and one rejected (past the bad-row budget)."""
    from mlops_pipeline.config import get_settings

    docs = get_settings().replace(
        home=tmp_path_factory.mktemp("data_docs"), build_data_docs=True, max_bad_row_fraction=0.05
    )
    land(docs, VALIDATED, out_of_range=1)
    validated = ingest_day(docs, VALIDATED)
    land(docs, REJECTED, out_of_range=12)
    with pytest.raises(BatchRejected) as rejected:
        ingest_day(docs, REJECTED)
    return docs, validated, rejected.value.report


def test_every_page_loads_only_local_assets_that_exist(site):
    settings, validated, _ = site
    root = settings.data_docs_dir
    pages = sorted(root.rglob("*.html"))
    # The index, the suite's page (the index links to it) and one page per validation.
    assert {p.relative_to(root).parts[0] for p in pages} == {
        "index.html",
        "expectations",
        "validations",
    }
    assert len(pages) == 4
    stylesheets: set[Path] = set()
    for page in pages:
        urls = loaded(page)
        assert urls, page
        for url in urls:
            assert not urlsplit(url).scheme and not url.startswith("//"), (page, url)
            asset = (page.parent / urlsplit(url).path).resolve()
            assert asset.is_file(), (page, url)
            assert asset.is_relative_to(root.resolve()), (page, url)
            if asset.suffix == ".css":
                stylesheets.add(asset)
        assert "vegaEmbed(" not in page.read_text(), "a chart would need the dropped Vega"
    for stylesheet in stylesheets:
        for url in loaded(stylesheet):
            assert not urlsplit(url).scheme, (stylesheet, url)
            assert (stylesheet.parent / urlsplit(url).path).is_file(), (stylesheet, url)
    served = {p.relative_to(root / "static" / "vendor").parts[0] for p in stylesheets}
    assert served >= {"bootstrap", "font-awesome", "bootstrap-table"}
    assert Path(validated.data_docs).is_file()


def test_each_page_and_the_index_show_the_platforms_verdict(site):
    settings, validated, rejected = site
    assert validated.status == "validated" and validated.rows_quarantined == 1
    validated_page = Path(validated.data_docs).read_text()
    # The suite failed (one row broke a row-level expectation), but the day is validated.
    assert "Failed" not in re.search(r"Status:</span>.*", validated_page).group(0)
    assert "fa-check-circle text-success" in validated_page
    assert f'Validated<br> <span class="h6" >Platform verdict:</span> {validated.message}' in (
        validated_page
    )
    rejected_page = Path(rejected.data_docs).read_text()
    assert 'Rejected<br> <span class="h6" >Platform verdict:</span> ' in rejected_page
    assert "over the 5.00% budget" in rejected_page

    index = (settings.data_docs_dir / "index.html").read_text()
    statuses = dict(
        re.findall(r"'run_name': '([^']+)'.*?'_validation_success_text': '(\w+)'", index)
    )
    assert statuses == {
        validated.validation_id: "Validated",
        rejected.validation_id: "Rejected",
    }
    assert index.count("ge-success-icon") == 1 and index.count("ge-failed-icon") == 1
    verdicts = json.loads((settings.gx_dir / "platform_verdicts.json").read_text())
    assert verdicts == {validated.validation_id: "validated", rejected.validation_id: "rejected"}


def test_an_unknown_external_asset_is_dropped_not_kept():
    page = (
        '<script src="https://cdn.example.org/new.js"></script>'
        '<link rel="stylesheet" href="https://cdn.example.org/new.css"/>'
        '<a href="https://greatexpectations.io">GX</a>'
    )
    assert offline_html(page, "..") == '<a href="https://greatexpectations.io">GX</a>'


def test_a_page_without_great_expectations_status_line_is_left_alone():
    assert page_with_verdict("<p>no overview</p>", "validated", "ok") == "<p>no overview</p>"
    assert index_with_verdicts("data: []", {"run": "validated"}) == "data: []"
