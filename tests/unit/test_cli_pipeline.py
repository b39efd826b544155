"""``train``, ``deploy``, ``predict`` and ``drift`` without Airflow, on the small use case: the
same package functions as the DAG tasks, with human output by default and JSON on ``--json``.
Feast's training set is stubbed with the use case's labelled frame (the job itself runs)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pandas as pd
import pytest

from mlops_pipeline.config import get_settings
from mlops_pipeline.data import storage
from mlops_pipeline.deployment.registry import registered_versions
from mlops_pipeline.platform.cli import main
from mlops_pipeline.platform.status import sqlite_versions
from tests.unit.small_usecase import labelled_frame, small_declaration, write_usecase
from tests.unit.test_status import status_in_a_subprocess


@pytest.fixture
def shop(tmp_path, monkeypatch):
    """The small classifier declared, nine days of its rows in the lake, and Feast's training
    set read from those rows."""
    from mlops_pipeline.features import access

    root = tmp_path / "usecases"
    # Sigmoid: isotonic calibration on a few hundred rows misses the log-loss floor.
    write_usecase(root, small_declaration("binary_classification", calibration="sigmoid"))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLOPS_USECASES_DIR", str(root))
    monkeypatch.setenv("MLOPS_USECASE", "shop_signal")
    settings = get_settings()
    spec = settings.spec
    frame = labelled_frame(spec)
    dates = frame[spec.timestamp].dt.date
    for day in sorted(dates.unique()):
        folder = storage.partition_dir(settings.lake_dir, day)
        folder.mkdir(parents=True)
        frame[dates == day].to_parquet(folder / "part-0.parquet", index=False)

    def training_set(settings, start, end):
        inside = frame[(dates >= start) & (dates <= end)].reset_index(drop=True)
        days = sorted(inside[spec.timestamp].dt.date.unique())
        partitions = [
            {"date": d.isoformat(), "content_sha256": "x", "validation_id": "v"} for d in days
        ]
        return types.SimpleNamespace(frame=inside, partitions=partitions)

    monkeypatch.setattr(access, "build_training_set", training_set)
    return types.SimpleNamespace(settings=settings, frame=frame, days=sorted(dates.unique()))


def test_train_deploy_predict_and_drift_without_airflow(shop, tmp_path, capsys, monkeypatch):
    spec = shop.settings.spec
    assert main(["train"]) == 0
    captured = capsys.readouterr()
    assert f"Registered {spec.model_name} v1 (@challenger)" in captured.out
    assert "... training" in captured.err and "done in" in captured.err, "progress on stderr"

    assert main(["deploy", "--evaluate-only", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["outcome"] == "evaluated only"
    assert evaluated["evaluation"]["challenger"]["version"] == "1"
    assert "decision_record" not in evaluated

    monkeypatch.setenv("MLOPS_REQUIRE_APPROVAL", "true")
    assert main(["deploy"]) == 1, "not promoted: a verdict of no"
    out = capsys.readouterr().out
    assert "awaiting approval" in out and "--version 1 --approve" in out
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"]["aliases"]["champion"] is None

    assert main(["deploy", "--approve"]) == 0
    out = capsys.readouterr().out
    assert f"{spec.model_name} v1: promoted" in out and "aliases: champion 1" in out
    record = json.loads(Path(out.split("decision record: ")[1].split()[0]).read_text())
    assert "(mlops-pipeline deploy --approve)" in record["decided_by"]
    assert main(["status", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert models["aliases"]["champion"] == "1"
    assert [d["outcome"] for d in models["last_decisions"]] == ["promoted"]
    # Status reads MLflow's database itself, as MLflow's client does, importing neither.
    database = shop.settings.mlflow_dir / "mlflow.db"
    assert sqlite_versions(shop.settings, database) == registered_versions(shop.settings)
    assert status_in_a_subprocess()["models"]["aliases"]["champion"] == "1"

    rows = shop.frame.head(3).drop(columns=[spec.label])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    assert main(["predict", "--input", str(tmp_path / "rows.csv"), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model_version"] == "1"
    predictions = answer["predictions"]
    assert [p["shop_id"] for p in predictions] == rows["shop_id"].tolist()
    assert all(0 <= p["probability"] <= 1 for p in predictions)
    assert [p["positive"] for p in predictions] == [
        p["probability"] >= answer["threshold"] for p in predictions
    ]
    # The same rows as the server's JSON body score the same; the table shows them.
    body = {"instances": json.loads(rows.to_json(orient="records", date_format="iso"))}
    (tmp_path / "rows.json").write_text(json.dumps(body))
    assert main(["predict", "--input", str(tmp_path / "rows.json")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == f"{spec.model_name} v1 (@champion):"
    assert table[1].split() == ["shop_id", "probability", "positive"]
    assert [float(line.split()[1]) for line in table[2:]] == pytest.approx(
        [p["probability"] for p in predictions], abs=1e-4
    )

    # By id: the features the online store holds (stubbed with the same rows); an id it has
    # none for is listed apart, as the server lists it.
    from mlops_pipeline.features import access

    class Online:
        def __init__(self, settings):
            self.known = rows.set_index("shop_id")

        def read(self, ids):
            columns = {"shop_id": list(ids)}
            for name in spec.feature_columns:
                columns[name] = [
                    self.known.at[i, name] if i in self.known.index else None for i in ids
                ]
            return columns

    monkeypatch.setattr(access, "OnlineFeatureReader", Online)
    ids = [*rows["shop_id"].tolist(), 999_999]
    assert main(["predict", "--ids", *map(str, ids), "--json"]) == 0
    by_id = json.loads(capsys.readouterr().out)
    assert [p["shop_id"] for p in by_id["predictions"]] == rows["shop_id"].tolist()
    assert [p["probability"] for p in by_id["predictions"]] == pytest.approx(
        [p["probability"] for p in predictions]
    )
    assert by_id["unknown"] == [{"shop_id": 999_999, "error": "no features online"}]

    night = shop.days[-1]
    assert main(["drift", "--date", night.isoformat(), "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert (outcome["date"], outcome["status"], outcome["champion_version"]) == (
        night.isoformat(),
        "checked",
        "1",
    )
    assert isinstance(outcome["retrain"], bool) and outcome["reasons"]
    assert main(["status"]) == 0
    assert night.isoformat() in capsys.readouterr().out.split("Drift checks:")[1]


def test_predict_without_a_champion_or_with_bad_rows_is_one_line(shop, tmp_path, capsys):
    rows = tmp_path / "rows.csv"
    pd.DataFrame({"size": [3]}).to_csv(rows, index=False)
    assert main(["predict", "--input", str(rows)]) == 3
    assert capsys.readouterr().err == f"error: {rows}: no 'shop_id' column (the entity key)\n"
    (tmp_path / "rows.txt").write_text("shop_id\n1\n")
    assert main(["predict", "--input", str(tmp_path / "rows.txt")]) == 3
    assert "expected a .csv or .json file" in capsys.readouterr().err
    shop.frame.head(2).to_csv(rows, index=False)
    assert main(["predict", "--input", str(rows)]) == 3
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "error: shop-signal has no @champion yet (mlops-pipeline deploy)"
    assert "Traceback" not in err
