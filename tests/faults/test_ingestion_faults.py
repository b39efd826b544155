"""Faults injected into a landing partition for real: a directory where the data file should
be, extra files beside it (a second CSV of the day, a valid Parquet beside a broken CSV),
scratch entries (hidden files, ``_SUCCESS``, a partial upload), null markers and stray text in
number columns, entity duplicates, oddly spelled files (a UTF-8 BOM, CRLF line ends, ``+02:00``
offsets), files without rows (header only, 0 bytes), and a re-run of the same file. Each
asserts the verdict and that nothing was lost or changed: the landing files' hashes, the lake
partition, the quarantined rows."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mlops_pipeline.config import Settings
from mlops_pipeline.data import ingestion_report, storage
from mlops_pipeline.data.datagen import generate_frame, write_landing_file
from mlops_pipeline.data.ingestion import BatchRejected, LandingFileMissing, ingest_day
from mlops_pipeline.data.partition_write import FAILED_EXPECTATIONS, VALIDATION_ID
from mlops_pipeline.failures import PermanentFailure, TransientFailure

DAY = dt.date(2025, 6, 2)
ROWS = 120


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (directories as their names), by relative path."""
    if not folder.exists():
        return {}
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "<dir>"
        )
        for path in sorted(folder.rglob("*"))
    }


@pytest.fixture
def lenient(settings: Settings) -> Settings:
    # Data Docs are judged in one test only: rendering them costs seconds per ingestion.
    return settings.replace(build_data_docs=False)


def land(settings: Settings, frame: pd.DataFrame, cells=(), file_format="csv") -> Path:
    """Write ``frame`` as the partition's landing file, then set ``cells`` ((row, column, text))
    in the CSV's own text."""
    path = storage.landing_file(settings, DAY, file_format)
    write_landing_file(frame, path, settings.spec.timestamp)
    if cells:
        lines = path.read_text().splitlines()
        header = lines[0].split(",")
        for row, column, text in cells:
            values = lines[row + 1].split(",")
            values[header.index(column)] = text
            lines[row + 1] = ",".join(values)
        path.write_text("\n".join(lines) + "\n")
    return path


def validated_before(settings: Settings) -> pd.DataFrame:
    """Ingest a clean partition first: a rejection must remove it."""
    frame = generate_frame(settings.spec, DAY, ROWS)
    land(settings, frame)
    assert ingest_day(settings, DAY).status == "validated"
    assert storage.partition_dir(settings.lake_dir, DAY).exists()
    return frame


def assert_rejected_whole(settings: Settings, rejected: BatchRejected, landing: dict) -> None:
    """A rejection recorded like every other: no lake partition, the verdict in quarantine,
    the report written; and the landing partition untouched."""
    assert isinstance(rejected, PermanentFailure) and not isinstance(rejected, TransientFailure)
    assert not storage.partition_dir(settings.lake_dir, DAY).exists()
    verdict = storage.read_manifest(storage.partition_dir(settings.quarantine_dir, DAY))
    assert verdict is not None and verdict["status"] == "rejected"
    assert verdict["message"] == str(rejected)
    report = json.loads(ingestion_report.report_path(settings, DAY).read_text())
    assert (report["status"], report["message"]) == ("rejected", str(rejected))
    assert tree_hashes(storage.partition_dir(settings.landing_dir, DAY)) == landing


def test_a_directory_where_the_landing_file_should_be_is_rejected(lenient):
    validated_before(lenient)
    path = storage.landing_file(lenient, DAY)
    path.unlink()
    path.mkdir()
    (path / "part-0.csv").write_text("customer_id\n1\n")
    landing = tree_hashes(path.parent)

    with pytest.raises(BatchRejected) as rejected:
        ingest_day(lenient, DAY)

    assert "customer_activity.csv (a directory) is where the data file should be" in str(
        rejected.value
    )
    assert_rejected_whole(lenient, rejected.value, landing)
    assert rejected.value.report.failed_expectations[0]["name"] == "partition_holds_one_data_file"
    # The sensor sees it as landed, so the run ends with this verdict instead of waiting.
    assert storage.find_landing_file(lenient, DAY) == path


def test_a_second_csv_of_the_day_is_rejected_naming_both(lenient):
    validated_before(lenient)
    landed = storage.landing_file(lenient, DAY)
    shutil.copy(landed, landed.with_name("customer_activity (1).csv"))
    landing = tree_hashes(landed.parent)

    with pytest.raises(BatchRejected) as rejected:
        ingest_day(lenient, DAY)

    message = str(rejected.value)
    assert "not one data file: beside customer_activity.csv it holds" in message
    assert "customer_activity (1).csv (a file of" in message
    assert_rejected_whole(lenient, rejected.value, landing)


def test_a_valid_parquet_beside_a_broken_csv_is_rejected(lenient):
    validated_before(lenient)
    frame = generate_frame(lenient.spec, DAY, ROWS)
    land(lenient, frame, file_format="parquet")
    csv = storage.landing_file(lenient, DAY)
    csv.write_bytes(csv.read_bytes()[:200] + b"\x00\xff garbage")
    landing = tree_hashes(csv.parent)

    with pytest.raises(BatchRejected) as rejected:
        ingest_day(lenient, DAY)

    message = str(rejected.value)
    assert "beside customer_activity.csv it holds customer_activity.parquet" in message
    assert "unreadable" not in message, "the CSV no longer wins by its name"
    assert_rejected_whole(lenient, rejected.value, landing)


def test_scratch_entries_beside_the_data_file_are_ignored(lenient):
    validated_before(lenient)
    lake = tree_hashes(storage.partition_dir(lenient.lake_dir, DAY))
    folder = storage.landing_file(lenient, DAY).parent
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "_SUCCESS").write_text("")
    (folder / ".customer_activity.csv.tmp").write_text("customer_id,event_timestamp\n1,")
    (folder / "_temporary").mkdir()
    landing = tree_hashes(folder)

    report = ingest_day(lenient, DAY)

    assert (report.status, report.rows_valid) == ("validated", ROWS)
    assert tree_hashes(storage.partition_dir(lenient.lake_dir, DAY)) == lake
    assert tree_hashes(folder) == landing


def test_a_partition_of_scratch_and_strangers_has_not_landed(lenient):
    folder = storage.partition_dir(lenient.landing_dir, DAY)
    folder.mkdir(parents=True)
    (folder / "_SUCCESS").write_text("")
    (folder / ".customer_activity.csv.tmp").write_text("partial")
    (folder / "notes.txt").write_text("sent tomorrow")
    landing = tree_hashes(folder)

    # The sensor keeps waiting, and ingestion run by hand says what it found.
    assert storage.find_landing_file(lenient, DAY) is None
    with pytest.raises(LandingFileMissing, match=r"it holds notes\.txt \(a file of 13 bytes\)$"):
        ingest_day(lenient, DAY)

    assert tree_hashes(folder) == landing
    assert not ingestion_report.report_path(lenient, DAY).exists()
    assert not storage.partition_dir(lenient.quarantine_dir, DAY).exists()


@pytest.mark.parametrize(
    ("column", "text", "kind"),
    [("monthly_charges", "-", "a number"), ("tenure_months", "n/a", "an int")],
)
def test_an_undeclared_marker_rejects_naming_column_value_and_row(lenient, column, text, kind):
    frame = validated_before(lenient)
    path = land(lenient, frame, [(41, column, text), (77, column, text)])
    landing = tree_hashes(path.parent)

    with pytest.raises(BatchRejected) as rejected:
        ingest_day(lenient, DAY)

    message = str(rejected.value)
    assert f"expect_column_type_to_be({column})" in message
    assert f"row 42 holds {text!r}, which is not {kind}" in message
    assert "observed float64]" not in message
    assert_rejected_whole(lenient, rejected.value, landing)


MARKED = {
    "churn": {
        "columns": {
            "monthly_charges": {"null_markers": ["n/a", "-"]},
            "tenure_months": {"null_markers": ["n/a", "-"]},
            "autopay": {"null_markers": ["n/a"]},
            "num_devices": {"null_markers": ["-999"]},
        }
    }
}


def test_declared_markers_quarantine_their_rows_whatever_the_kind(lenient):
    marked = lenient.replace(usecase_overrides=json.dumps(MARKED), max_bad_row_fraction=0.1)
    frame = generate_frame(marked.spec, DAY, ROWS)
    hit = {
        3: ("monthly_charges", "-"),
        5: ("monthly_charges", "n/a"),
        8: ("tenure_months", "n/a"),
        13: ("autopay", "n/a"),
        21: ("num_devices", "-999"),
    }
    path = land(marked, frame, [(row, column, text) for row, (column, text) in hit.items()])
    landing = tree_hashes(path.parent)

    report = ingest_day(marked, DAY)

    assert (report.status, report.rows_valid, report.rows_quarantined) == (
        "validated",
        ROWS - len(hit),
        len(hit),
    )
    quarantined = pd.read_parquet(storage.partition_dir(marked.quarantine_dir, DAY))
    assert list(quarantined["customer_id"]) == list(frame.loc[list(hit), "customer_id"])
    assert list(quarantined[FAILED_EXPECTATIONS]) == [
        f"expect_column_values_to_not_be_null({column})" for column, _ in hit.values()
    ]
    for row, (column, _) in zip(quarantined.itertuples(), hit.values(), strict=True):
        assert pd.isna(getattr(row, column)), "a marker is kept as the null it means"
    lake = pd.read_parquet(storage.partition_dir(marked.lake_dir, DAY))
    clean = frame.drop(index=list(hit)).reset_index(drop=True)
    assert list(lake["customer_id"]) == list(clean["customer_id"])
    assert str(lake["tenure_months"].dtype) == "int64" and lake.notna().all().all()
    assert tree_hashes(path.parent) == landing


def test_a_declared_marker_of_a_nullable_column_is_a_null_value(lenient):
    demand = lenient.for_usecase("store_demand").replace(
        usecase_overrides=json.dumps(
            {"store_demand": {"columns": {"competitor_distance_km": {"null_markers": ["n/a"]}}}}
        )
    )
    frame = generate_frame(demand.spec, DAY, ROWS)
    path = storage.landing_file(demand, DAY)
    write_landing_file(frame, path, demand.spec.timestamp)
    text = path.read_text().splitlines()
    column = text[0].split(",").index("competitor_distance_km")
    values = text[10].split(",")
    values[column] = "n/a"
    text[10] = ",".join(values)
    path.write_text("\n".join(text) + "\n")

    report = ingest_day(demand, DAY)

    assert (report.status, report.rows_valid, report.rows_quarantined) == ("validated", ROWS, 0)
    lake = pd.read_parquet(storage.partition_dir(demand.lake_dir, DAY))
    assert pd.isna(lake.loc[9, "competitor_distance_km"])


def _snapshot_pair(frame: pd.DataFrame, later: bool) -> pd.DataFrame:
    """``frame`` with row 30's entity sent again as the last row, one second later (or
    earlier) and with another value."""
    again = frame.iloc[[30]].copy()
    again["event_timestamp"] += pd.Timedelta(seconds=1 if later else -1)
    again["monthly_charges"] += 1.0
    return pd.concat([frame, again], ignore_index=True)


def test_two_snapshots_of_an_entity_keep_the_latest_by_default(lenient):
    frame = _snapshot_pair(generate_frame(lenient.spec, DAY, ROWS), later=False)
    path = land(lenient, frame)
    landing = tree_hashes(path.parent)

    report = ingest_day(lenient, DAY)

    assert (report.rows_valid, report.rows_quarantined) == (ROWS, 1)
    quarantined = pd.read_parquet(storage.partition_dir(lenient.quarantine_dir, DAY))
    # The re-sent row is the older snapshot here: it is the one quarantined.
    assert list(quarantined[FAILED_EXPECTATIONS]) == ["entity_row_is_latest(customer_id)"]
    assert quarantined.loc[0, "monthly_charges"] == frame.loc[ROWS, "monthly_charges"]
    lake = pd.read_parquet(storage.partition_dir(lenient.lake_dir, DAY))
    assert lake["customer_id"].is_unique and len(lake) + len(quarantined) == len(frame)
    kept = lake.loc[lake["customer_id"] == frame.loc[30, "customer_id"]]
    assert kept["monthly_charges"].item() == frame.loc[30, "monthly_charges"]
    assert tree_hashes(path.parent) == landing


def test_the_reject_rule_keeps_an_entitys_first_row_only(lenient):
    strict = lenient.replace(
        usecase_overrides=json.dumps({"churn": {"entity": {"duplicates": "reject"}}})
    )
    frame = _snapshot_pair(generate_frame(strict.spec, DAY, ROWS), later=True)
    land(strict, frame)

    report = ingest_day(strict, DAY)

    assert (report.rows_valid, report.rows_quarantined) == (ROWS, 1)
    quarantined = pd.read_parquet(storage.partition_dir(strict.quarantine_dir, DAY))
    assert list(quarantined[FAILED_EXPECTATIONS]) == ["entity_row_is_first(customer_id)"]
    assert quarantined.loc[0, "event_timestamp"] == frame.loc[ROWS, "event_timestamp"]
    lake = pd.read_parquet(storage.partition_dir(strict.lake_dir, DAY))
    assert lake["customer_id"].is_unique


def test_an_exact_copy_quarantines_the_copy_only(lenient):
    lenient = lenient.replace(max_bad_row_fraction=0.05)
    base = generate_frame(lenient.spec, DAY, ROWS)
    frame = pd.concat([base, base.iloc[[12, 12]]], ignore_index=True)
    path = land(lenient, frame)
    landing = tree_hashes(path.parent)

    report = ingest_day(lenient, DAY)

    assert (report.rows_valid, report.rows_quarantined) == (ROWS, 2)
    quarantined = pd.read_parquet(storage.partition_dir(lenient.quarantine_dir, DAY))
    assert list(quarantined[FAILED_EXPECTATIONS]) == ["row_is_not_a_copy"] * 2
    lake = pd.read_parquet(storage.partition_dir(lenient.lake_dir, DAY))
    assert list(lake["customer_id"]) == list(base["customer_id"]), "the original stays"
    assert tree_hashes(path.parent) == landing


def test_a_rerun_stores_the_same_validation_result_and_pages(settings):
    settings = settings.replace(max_bad_row_fraction=0.05)
    frame = _snapshot_pair(generate_frame(settings.spec, DAY, ROWS), later=True)
    land(settings, frame, [(4, "monthly_charges", "-1")])  # out of range: quarantined
    first = ingest_day(settings, DAY)
    result = Path(first.validation_result).read_bytes()
    pages = tree_hashes(settings.data_docs_dir)
    lake = tree_hashes(storage.partition_dir(settings.lake_dir, DAY))

    second = ingest_day(settings, DAY)
    assert Path(second.validation_result).read_bytes() == result
    assert tree_hashes(settings.data_docs_dir) == pages
    # A re-created Great Expectations project draws new ids: none of them reach the result.
    shutil.rmtree(settings.gx_dir)
    shutil.rmtree(settings.data_docs_dir)
    third = ingest_day(settings, DAY)
    assert Path(third.validation_result).read_bytes() == result
    assert tree_hashes(settings.data_docs_dir) == pages
    assert tree_hashes(storage.partition_dir(settings.lake_dir, DAY)) == lake
    stored = json.loads(result)
    assert "ge_load_time" not in stored["meta"]["batch_markers"]
    checks = {c["name"]: c["unexpected_index_list"] for c in stored["platform_checks"]}
    assert checks == {"row_is_not_a_copy": [], "entity_row_is_latest(customer_id)": [30]}


def test_a_sample_with_markers_is_drafted_with_them_and_ingests_alike(settings, tmp_path):
    """The scaffold reads a sample as ingestion does: the feed's markers are drafted as the
    column's ``null_markers``, and the same file then lands and validates."""
    from mlops_pipeline.usecases.scaffold.new_usecase import scaffold_usecase

    rows = 60
    text = ["shop_id,seen_at,takings,weather,outcome"]
    for i in range(rows):
        takings = {5: "n/a", 9: "-"}.get(i, f"{10 + i * 1.5:.1f}")
        text.append(
            f"{i + 1},2025-06-02T{i % 24:02d}:00:00Z,{takings},{('sun', 'rain')[i % 2]},{i % 2}"
        )
    sample = tmp_path / "sample.csv"
    sample.write_text("\n".join(text) + "\n")
    drafting = settings.replace(usecases_dir=tmp_path / "usecases", build_data_docs=False)
    scaffold_usecase(
        drafting,
        "tills",
        sample,
        entity_key="shop_id",
        timestamp="seen_at",
        label="outcome",
        dags_dir=tmp_path / "dags",
    )
    tills = drafting.for_usecase("tills")
    takings = tills.spec.column("takings")
    assert (takings.kind.value, takings.null_markers, takings.nullable) == (
        "float",
        ("-", "n/a"),
        True,
    )
    landed = storage.landing_file(tills, DAY)
    landed.parent.mkdir(parents=True)
    shutil.copy(sample, landed)
    landing = tree_hashes(landed.parent)

    report = ingest_day(tills, DAY)

    assert (report.status, report.rows_valid, report.rows_quarantined) == ("validated", rows, 0)
    lake = pd.read_parquet(storage.partition_dir(tills.lake_dir, DAY))
    assert lake["takings"].isna().tolist() == [i in (5, 9) for i in range(rows)]
    assert tree_hashes(landed.parent) == landing


def _with_bom(data: bytes) -> bytes:
    return b"\xef\xbb\xbf" + data


def _with_crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


_UTC_STAMP = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)Z")


def _at_plus_two(data: bytes) -> bytes:
    """Every UTC timestamp written as the same instant at ``+02:00``."""

    def local(match: re.Match[bytes]) -> bytes:
        instant = dt.datetime.fromisoformat(match.group(1).decode()) + dt.timedelta(hours=2)
        return f"{instant:%Y-%m-%dT%H:%M:%S}+02:00".encode()

    return _UTC_STAMP.sub(local, data)


RESPELLINGS = {
    "a UTF-8 BOM": _with_bom,
    "CRLF line ends": _with_crlf,
    "+02:00 offsets": _at_plus_two,
}


def test_another_spelling_of_the_same_rows_lands_the_same_partition(lenient):
    lenient = lenient.replace(max_bad_row_fraction=0.05)
    frame = generate_frame(lenient.spec, DAY, ROWS)
    # Either side of midnight UTC: the instant decides, whatever date the offset's wall shows
    # (at +02:00 the first is the next day's 01:30 and is kept, the second the day's own 01:30
    # and is quarantined, being the day before in UTC).
    edges = [(3, "event_timestamp", "2025-06-02T23:30:00Z")]
    edges.append((4, "event_timestamp", "2025-06-01T23:30:00Z"))
    path = land(lenient, frame, edges)
    plain_bytes = path.read_bytes()
    plain = ingest_day(lenient, DAY)
    lake = storage.partition_dir(lenient.lake_dir, DAY) / "part-0.parquet"
    lake_data = lake.read_bytes()
    quarantine = storage.partition_dir(lenient.quarantine_dir, DAY)
    quarantined = pd.read_parquet(quarantine).drop(columns=[VALIDATION_ID])
    assert list(quarantined["customer_id"]) == [frame.loc[4, "customer_id"]]

    for spelling, respell in RESPELLINGS.items():
        path.write_bytes(respell(plain_bytes))
        landing = tree_hashes(path.parent)
        report = ingest_day(lenient, DAY)

        outcome = (report.status, report.rows_valid, report.rows_quarantined)
        assert outcome == ("validated", ROWS - 1, 1), spelling
        assert report.landing_sha256 != plain.landing_sha256, f"{spelling}: not another file"
        assert lake.read_bytes() == lake_data, spelling
        again = pd.read_parquet(quarantine).drop(columns=[VALIDATION_ID])
        pd.testing.assert_frame_equal(again, quarantined, obj=spelling)
        assert tree_hashes(path.parent) == landing, spelling


ROWLESS = {
    "header only": (
        lambda data: data.split(b"\n", 1)[0] + b"\n",
        "batch is empty: the landing file holds no rows",
        "expect_table_row_count_to_be_between",
    ),
    "0 bytes": (
        lambda data: b"",
        "landing file is unreadable: ArrowInvalid: Empty CSV file",
        "file_is_readable",
    ),
}


@pytest.mark.parametrize(("empty", "message", "failed"), ROWLESS.values(), ids=ROWLESS.keys())
def test_a_file_without_rows_rejects_the_day(lenient, empty, message, failed):
    validated_before(lenient)
    path = storage.landing_file(lenient, DAY)
    path.write_bytes(empty(path.read_bytes()))
    landing = tree_hashes(path.parent)

    with pytest.raises(BatchRejected) as rejected:
        ingest_day(lenient, DAY)

    assert message in str(rejected.value)
    assert rejected.value.report.failed_expectations[0]["name"] == failed
    assert_rejected_whole(lenient, rejected.value, landing)
