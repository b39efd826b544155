from __future__ import annotations

import datetime as dt
import json

import pytest

from mlops_pipeline.data.storage import landing_file
from mlops_pipeline.platform import cli
from mlops_pipeline.platform.cli import main
from tests.unit.test_scaffold import panel, write_csv


def test_generate_ingest_and_status(settings, capsys):
    assert (
        main(["generate", "--date", "2025-06-02", "--rows", "500", "--scenario", "out_of_range"])
        == 0
    )
    generated = json.loads(capsys.readouterr().out)
    assert generated["path"] == str(landing_file(settings, dt.date(2025, 6, 2)))

    assert main(["ingest", "--date", "2025-06-02"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_quarantined"] == 2

    assert main(["generate", "--date", "2025-06-03", "--rows", "300", "--scenario", "empty"]) == 0
    assert main(["ingest", "--date", "2025-06-03"]) == 1
    capsys.readouterr()

    assert main(["status"]) == 0
    status = json.loads(capsys.readouterr().out)["ingestion"]
    assert [p["date"] for p in status["validated_partitions"]] == ["2025-06-02"]
    assert status["validated_partitions"][0]["rows_valid"] == 498
    assert {p["date"]: p["status"] for p in status["quarantined_partitions"]} == {
        "2025-06-03": "rejected",
        "2025-06-02": "validated",
    }


def test_the_date_options_take_an_hour_and_refuse_what_names_none(capsys):
    parser = cli.build_parser()
    hour = parser.parse_args(["ingest", "--date", "2025-06-02T05"]).date
    assert hour == dt.datetime(2025, 6, 2, 5)
    assert parser.parse_args(["generate", "--date", "2025-06-02T05:00"]).date == hour
    assert parser.parse_args(["ingest", "--date", "2025-06-02"]).date == dt.date(2025, 6, 2)
    for bad in ("2025-06-02T5", "2025-06-02 05:00", "June 2nd", "2025-06-31"):
        with pytest.raises(SystemExit):
            parser.parse_args(["ingest", "--date", bad])
        assert "expected YYYY-MM-DD, or YYYY-MM-DDTHH[:MM] for an hour" in capsys.readouterr().err


@pytest.fixture
def usecases_dir(tmp_path, monkeypatch, mlops_home):
    root = tmp_path / "usecases"
    monkeypatch.setenv("MLOPS_USECASES_DIR", str(root))
    monkeypatch.delenv("MLOPS_USECASE")
    return root


def new_usecase(tmp_path, name: str, *extra: str) -> int:
    sample = write_csv(panel(), tmp_path / f"{name}.csv")
    return main(
        [
            "new-usecase",
            name,
            "--from",
            str(sample),
            "--entity",
            "person_id",
            "--timestamp",
            "observed_at",
            "--label",
            "employed",
            "--dags-dir",
            str(tmp_path / "dags"),
            *extra,
        ]
    )


def test_new_check_and_list_use_cases(usecases_dir, tmp_path, capsys):
    assert new_usecase(tmp_path, "employment", "--cadence", "weekly") == 0
    out = capsys.readouterr().out
    assert f"Wrote {usecases_dir / 'employment' / 'usecase.yaml'} (binary_classification)" in out
    assert f"Wrote {tmp_path / 'dags' / 'employment.py'}" in out
    assert "mlops-pipeline check-usecase employment" in out
    assert (tmp_path / "dags" / "employment.py").exists()

    assert main(["check-usecase", "employment"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("employment: valid (binary_classification, weekly; entity person_id")
    assert "\n" not in line

    assert new_usecase(tmp_path, "employment") == 2, "an existing use case is not overwritten"
    assert "already exists" in capsys.readouterr().err

    assert new_usecase(tmp_path, "pay", "--task", "regression") == 2
    err = capsys.readouterr().err
    assert err.startswith("mlops-pipeline new-usecase: ") and "regression label" in err
    assert "Traceback" not in err and not (usecases_dir / "pay").exists()

    broken = usecases_dir / "broken"
    broken.mkdir()
    (broken / "usecase.yaml").write_text(
        (usecases_dir / "employment" / "usecase.yaml")
        .read_text()
        .replace("name: employment", "name: broken")
        .replace("label: employed", "label: outcome")
        .replace("decision_field: predicted_employed", "decision_field: null")
    )
    assert main(["check-usecase", "broken"]) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err, err
    assert "  - label: 'outcome' is not a declared column" in err
    assert "  - serving.decision_field: a classifier needs a decision field" in err
    assert main(["check-usecase", "absent"]) == 2
    assert "no use case 'absent'" in capsys.readouterr().err

    assert main(["usecases"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == ["broken", "employment"]
    assert "INVALID" in listed[0] and "binary_classification" in listed[1]


def test_an_hourly_use_case_is_drafted_and_told_to_land_hours(usecases_dir, tmp_path, capsys):
    assert new_usecase(tmp_path, "shifts", "--cadence", "hourly") == 0
    out = capsys.readouterr().out
    assert "/date=YYYY-MM-DDTHH/" in out and "--date YYYY-MM-DDTHH" in out
    assert main(["check-usecase", "shifts"]) == 0
    assert "(binary_classification, hourly;" in capsys.readouterr().out


def test_commands_work_on_the_use_case_named(usecases_dir, tmp_path, capsys, monkeypatch):
    seen = []
    monkeypatch.setitem(cli.COMMANDS, "status", lambda args, s: seen.append(s.spec.name) or 0)
    assert new_usecase(tmp_path, "first") == 0 and new_usecase(tmp_path, "second") == 0
    capsys.readouterr()

    assert main(["status"]) == 2, "two declared and none named"
    err = capsys.readouterr().err
    assert "MLOPS_USECASE is not set" in err and "first, second" in err
    assert main(["status", "--usecase", "second"]) == 0
    monkeypatch.setenv("MLOPS_USECASE", "first")
    assert main(["status"]) == 0
    assert main(["status", "--usecase", "second"]) == 0, "the option wins over the variable"
    assert seen == ["second", "first", "second"]
    with pytest.raises(SystemExit):
        main(["status", "--usecase", "Not-A-Name"])


def test_serve_fixes_the_use_case_for_its_workers(usecases_dir, tmp_path, capsys, monkeypatch):
    from mlops_pipeline.serving import server

    served = []
    monkeypatch.setattr(server, "serve", lambda s, host, port, workers: served.append((s, port)))
    assert new_usecase(tmp_path, "only") == 0
    assert main(["serve", "--port", "18123"]) == 0, "the only declared use case"
    ((settings, port),) = served
    assert port == 18123 and settings.to_env()["MLOPS_USECASE"] == "only"
