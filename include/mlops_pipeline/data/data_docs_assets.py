"""Data Docs that work without the internet: the styles and scripts Great Expectations' pages
load from CDNs are copied into the site (``static/vendor/``) and the pages point at them.

Where the files come from: Bootstrap 4, jQuery 3, Font Awesome 6 and bootstrap-datepicker from
their XStatic packages (``requirements.in``); bootstrap-table and its filter-control extension,
which no Python package ships, are vendored beside this module (``data_docs_vendor/``, from the
``bootstrap-table`` 1.19.1 npm package, the version the templates name, MIT licensed). Nothing
is fetched at run time.

What is dropped instead: Popper (Bootstrap's bundle carries it), the dark-mode theme
(``bootstrap-prefers-dark``; the pages are light without it) and Vega, Vega-Lite and
Vega-Embed, which only draw the charts of distribution expectations (KL divergence, quantiles,
histograms) that no platform suite uses; a page that calls ``vegaEmbed`` would lose its chart,
not its table. The logo comes from the site's own ``static/images`` (Great Expectations copies
it there) instead of a tracking URL. Links a reader clicks (greatexpectations.io, its docs)
stay links.
"""

from __future__ import annotations

import filecmp
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

VENDOR_DIR = "static/vendor"
log = logging.getLogger(__name__)
_BOOTSTRAP_TABLE = Path(__file__).with_name("data_docs_vendor") / "bootstrap-table-1.19.1"


def _xstatic(package: str) -> Path:
    """The data folder of an XStatic package (its ``BASE_DIR``)."""
    module = __import__(f"xstatic.pkg.{package}", fromlist=["BASE_DIR"])
    return Path(module.BASE_DIR)


def _sources() -> Iterator[tuple[str, Path]]:
    """(path under ``VENDOR_DIR``, file to copy) of every asset the pages get."""
    bootstrap = _xstatic("bootstrap")
    yield "bootstrap/css/bootstrap.min.css", bootstrap / "css" / "bootstrap.min.css"
    yield "bootstrap/js/bootstrap.bundle.min.js", bootstrap / "js" / "bootstrap.bundle.min.js"
    yield "jquery/jquery.min.js", _xstatic("jquery") / "jquery.min.js"
    awesome = _xstatic("font_awesome")
    yield "font-awesome/css/all.min.css", awesome / "css" / "all.min.css"
    # Its fonts' licence asks for attribution wherever they are shipped.
    yield "font-awesome/LICENSE.txt", awesome / "LICENSE.txt"
    # all.min.css loads its fonts from ../webfonts/.
    for font in sorted((awesome / "webfonts").iterdir()):
        yield f"font-awesome/webfonts/{font.name}", font
    picker = _xstatic("bootstrap_datepicker")
    yield "bootstrap-datepicker/bootstrap-datepicker.js", picker / "bootstrap-datepicker.js"
    yield "bootstrap-datepicker/datepicker3.css", picker / "datepicker3.css"
    for name in (
        "bootstrap-table.min.js",
        "bootstrap-table.min.css",
        "bootstrap-table-filter-control.min.js",
        "bootstrap-table-filter-control.min.css",
        "LICENSE",
    ):
        yield f"bootstrap-table/{name}", _BOOTSTRAP_TABLE / name


def install_assets(site_dir: Path) -> None:
    """Copy the assets into ``site_dir``'s ``VENDOR_DIR``; a file already there with the same
    bytes is left alone, so a re-render changes nothing."""
    for relative, source in _sources():
        target = site_dir / VENDOR_DIR / relative
        if target.exists() and filecmp.cmp(source, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


# Each external asset of Great Expectations' templates: the local file (under VENDOR_DIR, or
# under the site root for the logo) or None to drop the tag.
_REPLACEMENTS: dict[str, str | None] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        f"{VENDOR_DIR}/bootstrap/css/bootstrap.min.css"
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        f"{VENDOR_DIR}/bootstrap/js/bootstrap.bundle.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": None,
    "https://code.jquery.com/jquery-3.7.1.min.js": f"{VENDOR_DIR}/jquery/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        f"{VENDOR_DIR}/font-awesome/css/all.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": f"{VENDOR_DIR}/bootstrap-datepicker/bootstrap-datepicker.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": f"{VENDOR_DIR}/bootstrap-datepicker/datepicker3.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        f"{VENDOR_DIR}/bootstrap-table/bootstrap-table.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        f"{VENDOR_DIR}/bootstrap-table/bootstrap-table.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js": (
        f"{VENDOR_DIR}/bootstrap-table/bootstrap-table-filter-control.min.js"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css": (
        f"{VENDOR_DIR}/bootstrap-table/bootstrap-table-filter-control.min.css"
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css": (
        f"{VENDOR_DIR}/bootstrap-table/bootstrap-table-filter-control.min.css"
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css": None,
    "https://cdn.jsdelivr.net/npm/vega@5": None,
    "https://cdn.jsdelivr.net/npm/vega-lite@5": None,
    "https://cdn.jsdelivr.net/npm/vega-embed@6": None,
}

# A whole <script src=...></script> or <link href=...> tag naming an external URL; the
# integrity attributes go with the tag (they hash the CDN's copy, not the local one).
_TAG = re.compile(
    r"<script\b[^>]*?\bsrc=\"(?P<src>https?://[^\"]+)\"[^>]*>\s*</script>"
    r"|<link\b[^>]*?\bhref=\"(?P<href>https?://[^\"]+)\"[^>]*>"
)
# Great Expectations points a validation page's icon one folder short of the site root.
_FAVICON = re.compile(r'href="(?:\.\./|\./)*static/images/favicon\.ico"')
_WEB_ASSETS = re.compile(
    r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/[\w.-]+(\?[^\"')]*)?"
)


def offline_html(html: str, root: str) -> str:
    """The page with every external style, script and image replaced by the site's copy
    (``root`` is the relative path from the page's folder to the site root, e.g. ``../..``)
    or dropped; unknown ones are dropped with a warning."""

    def tag(match: re.Match[str]) -> str:
        url = match.group("src") or match.group("href")
        if url not in _REPLACEMENTS:
            # A template this module does not know yet: a page without the asset beats one that
            # waits on a host production networks block.
            log.warning("Data Docs: dropped %s, which has no local copy", url)
        local = _REPLACEMENTS.get(url)
        if local is None:
            return ""
        if match.group("src"):
            return f'<script src="{root}/{local}"></script>'
        return f'<link rel="stylesheet" href="{root}/{local}">'

    html = _TAG.sub(tag, html)
    html = _FAVICON.sub(f'href="{root}/static/images/favicon.ico"', html)
    return _WEB_ASSETS.sub(f"{root}/static/images/logo-long.png", html)
