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
        main(
            ["generate", "--date", "2025-06-02", "--rows", "500", "--scenario", "out_of_range"]
            + ["--json"]
        )
        == 0
    )
    generated = json.loads(capsys.readouterr().out)
    assert generated["path"] == str(landing_file(settings, dt.date(2025, 6, 2)))

    assert main(["ingest", "--date", "2025-06-02", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows_quarantined"] == 2

    assert main(["generate", "--date", "2025-06-03", "--rows", "300", "--scenario", "empty"]) == 0
    assert main(["ingest", "--date", "2025-06-03"]) == 1
    capsys.readouterr()

    assert main(["status", "--json"]) == 0
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

    assert new_usecase(tmp_path, "employment") == 3, "an existing use case is not overwritten"
    assert "already exists" in capsys.readouterr().err

    assert new_usecase(tmp_path, "pay", "--task", "regression") == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "regression label" in err
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
    assert main(["check-usecase", "broken"]) == 3
    err = capsys.readouterr().err
    assert "3 problem(s)" in err, err
    assert "  - label: 'outcome' is not a declared column" in err
    assert "  - serving.decision_field: a classifier needs a decision field" in err
    assert main(["check-usecase", "absent"]) == 3
    assert "no use case 'absent'" in capsys.readouterr().err

    assert main(["usecases"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == ["broken", "employment"]
    assert "INVALID" in listed[0] and "binary_classification" in listed[1]
    assert main(["usecases", "--json"]) == 0
    broken_json, employment_json = json.loads(capsys.readouterr().out)
    assert broken_json["valid"] is False and "decision field" in broken_json["problem"]
    assert employment_json["valid"] and employment_json["cadence"] == "weekly"


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

    assert main(["status"]) == 3, "two declared and none named"
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


def test_version_names_the_package_and_the_services_it_runs_on(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"mlops-pipeline {metadata.version('mlops-pipeline')} (")
    for name in ("apache-airflow", "mlflow", "feast"):
        assert f"{name} {metadata.version(name)}" in line


def subcommands() -> dict[str, object]:
    parser = cli.build_parser()
    (choices,) = [a.choices for a in parser._actions if a.dest == "command"]
    return dict(choices)


def test_every_subcommand_has_a_description_and_an_example_and_no_markup():
    commands = subcommands()
    assert set(commands) == {name.replace("_", "-") for name in cli.COMMANDS}
    texts = {"": cli.build_parser().format_help()}
    texts.update({name: sub.format_help() for name, sub in commands.items()})
    for name, text in texts.items():
        for markup in ("``", ":func:", ":class:", ".. ", "**"):
            assert markup not in text, (name, markup)
        assert "exit codes:" in text and "3  an expected, permanent failure" in text, name
    for name, text in texts.items():
        if name:
            description = text.split("\n\n")[1]
            assert len(description) > 20, name
            assert f"example:\n  mlops-pipeline {name}" in text, name
    assert "mlops-pipeline status --json" in texts["status"]


def test_the_scenario_choices_are_the_generators(capsys):
    from mlops_pipeline.data.datagen import Scenario, SchemaBreak
    from mlops_pipeline.platform.cli import parser

    assert parser.SCENARIOS == tuple(s.value for s in Scenario)
    assert parser.SCHEMA_BREAKS == tuple(s.value for s in SchemaBreak)


def test_a_missing_landing_file_is_one_line_and_exit_3(settings, capsys, monkeypatch):
    assert main(["ingest", "--date", "2025-06-02"]) == 3
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("error: no landing file of customer_activity for 2025-06-02 ")
    assert not any("Traceback" in line for line in err)

    assert main(["ingest", "--date", "2025-06-02", "--debug"]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.splitlines()[-1].startswith("error:")
    assert main(["--debug", "ingest", "--date", "2025-06-02"]) == 3, "before the command too"
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    monkeypatch.setenv("MLOPS_DEBUG", "1")
    assert main(["ingest", "--date", "2025-06-02"]) == 3
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_a_bad_spec_is_one_line_and_exit_3(usecases_dir, tmp_path, capsys):
    assert new_usecase(tmp_path, "broken") == 0
    declaration = usecases_dir / "broken" / "usecase.yaml"
    declaration.write_text(declaration.read_text().replace("label: employed", "label: outcome"))
    capsys.readouterr()
    assert main(["status", "--usecase", "broken"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "label: 'outcome' is not a declared column" in err
    assert "Traceback" not in err


def test_transient_failures_exit_4_and_unexpected_ones_keep_their_traceback(
    settings, capsys, monkeypatch
):
    from mlops_pipeline.deployment.registry import TrackingUnavailable

    def unavailable(args, settings):
        raise TrackingUnavailable("MLflow tracking at http://mlflow:5000 is unreachable")

    monkeypatch.setitem(cli.COMMANDS, "status", unavailable)
    assert main(["status"]) == 4
    assert capsys.readouterr().err == (
        "error: MLflow tracking at http://mlflow:5000 is unreachable\n"
    )

    def bug(args, settings):
        raise KeyError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "status", bug)
    with pytest.raises(KeyError, match="a bug"):
        main(["status"])


def test_status_prints_tables_by_default_and_everything_with_json(settings, capsys):
    assert main(["generate", "--date", "2025-06-02", "--rows", "300"]) == 0
    assert capsys.readouterr().out.startswith("Wrote 300 rows (clean) to ")
    assert main(["ingest", "--date", "2025-06-02"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("2025-06-02: validated: 300 rows validated")
    assert "... ingesting customer_activity 2025-06-02" in captured.err

    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("churn: binary_classification, daily; entity customer_id")
    partitions = text.split("Validated partitions (newest first):\n")[1].splitlines()
    assert partitions[0].split() == ["date", "status", "valid", "quarantined"]
    assert partitions[1].split() == ["2025-06-02", "validated", "300", "0"]
    assert "no version registered yet" in text and "none materialized yet" in text
    assert "{" not in text

    assert main(["status", "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["ingestion"]["validated_partitions"][0]["rows_valid"] == 300
    assert set(state) == {
        "usecase",
        "mlops_home",
        "profile",
        "ingestion",
        "features",
        "models",
        "monitoring",
    }
