"""``new-usecase``'s inference: a sample CSV or Parquet file becomes a declaration that loads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_pipeline.orchestration.dag_file import dag_file_text
from mlops_pipeline.usecases import load_usecase
from mlops_pipeline.usecases.scaffold import ScaffoldError
from mlops_pipeline.usecases.scaffold.inference import read_sample
from mlops_pipeline.usecases.scaffold.new_usecase import scaffold_usecase
from mlops_pipeline.usecases.spec import Cadence, Kind, Task, TrainingSpec

ROWS = 120


def panel(rows: int = ROWS, seed: int = 3) -> pd.DataFrame:
    """Weekly snapshots of 40 people: names unlike any shipped use case's."""
    rng = np.random.default_rng(seed)
    weeks = rows // 40
    hours = rng.normal(32.0, 6.0, rows).round(1)
    hours[::9] = np.nan
    return pd.DataFrame(
        {
            "person_id": np.tile(np.arange(1, 41), weeks),
            "observed_at": np.repeat(
                pd.date_range("2025-03-03 09:00", periods=weeks, freq="7D", tz="UTC"), 40
            ),
            "age": rng.integers(18, 66, rows),
            "hours_worked": hours,
            "sector": rng.choice(["retail", "health", "tech"], rows),
            "nickname": [f"p{i}" for i in range(rows)],
            "remote": rng.random(rows) < 0.4,
            "balance": rng.normal(0.0, 100.0, rows).round(2),
            "employed": rng.random(rows) < 0.6,
        }
    )


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    out = frame.copy()
    if "observed_at" in out and pd.api.types.is_datetime64_any_dtype(out["observed_at"]):
        out["observed_at"] = out["observed_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    for column in out.columns:
        if out[column].dtype == bool:
            out[column] = out[column].map({True: "true", False: "false"})
    out.to_csv(path, index=False)
    return path


@pytest.fixture
def usecases(tmp_path, monkeypatch, settings):
    monkeypatch.setenv("MLOPS_USECASES_DIR", str(tmp_path / "usecases"))
    return settings.replace(usecases_dir=tmp_path / "usecases")


def scaffold(usecases, tmp_path, sample: Path, name: str = "employment", **options):
    return scaffold_usecase(
        usecases,
        name,
        sample,
        entity_key=options.pop("entity_key", "person_id"),
        timestamp=options.pop("timestamp", "observed_at"),
        label=options.pop("label", "employed"),
        dags_dir=tmp_path / "dags",
        **options,
    )


def test_a_csv_sample_becomes_a_classifier_declaration(usecases, tmp_path):
    sample = write_csv(panel(), tmp_path / "people.csv")
    written = scaffold(usecases, tmp_path, sample, cadence=Cadence.WEEKLY)

    usecase = load_usecase(usecases.usecases_dir / "employment")
    assert written.declaration == usecases.usecases_dir / "employment" / "usecase.yaml"
    assert written.task is Task.BINARY_CLASSIFICATION, "a true/false label: a classifier"
    assert usecase.cadence is Cadence.WEEKLY and usecase.dataset == "employment"
    assert (usecase.entity.key, usecase.entity.name) == ("person_id", "person")
    kinds = {c: s.kind for c, s in usecase.columns.items()}
    assert kinds == {
        "person_id": Kind.INT,
        "observed_at": Kind.TIMESTAMP,
        "age": Kind.INT,
        "hours_worked": Kind.FLOAT,
        "sector": Kind.CATEGORY,
        "nickname": Kind.CATEGORY,
        "remote": Kind.BOOL,
        "balance": Kind.FLOAT,
        "employed": Kind.BOOL,
    }
    columns = usecase.columns
    assert columns["sector"].values == ("health", "retail", "tech")
    assert columns["nickname"].values is None, "high-cardinality text stays open"
    assert columns["hours_worked"].nullable and not columns["age"].nullable
    assert not any(columns[c].nullable for c in ("person_id", "observed_at", "employed"))
    # Ranges: the sample's, widened by half the span, a floor of 0 without negative values.
    age = panel()["age"]
    assert columns["age"].min == 0 and columns["age"].max >= age.max() + (age.max() - age.min()) / 2
    assert columns["balance"].min < panel()["balance"].min() - 50
    assert columns["person_id"].min == 0 and columns["person_id"].max is None, "ids grow"
    # One view with every feature, the versioned service, the serving fields.
    assert usecase.features.views == {
        "employment_features": usecase.features.views["employment_features"]
    }
    view = usecase.features.views["employment_features"]
    assert view.features == usecase.feature_columns and view.ttl == dt.timedelta(days=14)
    assert usecase.features.service == "employment_v1"
    assert usecase.serving.score_field == "employed_probability"
    assert usecase.serving.decision_field == "predicted_employed"
    assert any("nickname" in note for note in written.notes)


def test_an_hourly_use_case_is_drafted_with_a_ttl_in_hours(usecases, tmp_path):
    sample = write_csv(panel(), tmp_path / "people.csv")
    scaffold(usecases, tmp_path, sample, cadence=Cadence.HOURLY)
    usecase = load_usecase(usecases.usecases_dir / "employment")
    assert usecase.cadence is Cadence.HOURLY
    # The view keeps a value for two partitions, as daily and weekly drafts do.
    assert usecase.features.views["employment_features"].ttl == dt.timedelta(hours=2)
    assert "cadence: hourly" in (usecases.usecases_dir / "employment" / "usecase.yaml").read_text()


def test_the_defaults_are_written_as_comments(usecases, tmp_path):
    written = scaffold(usecases, tmp_path, write_csv(panel(), tmp_path / "people.csv"))
    text = written.declaration.read_text()
    usecase = load_usecase(written.declaration.parent)
    assert usecase.training == TrainingSpec(), "defaults apply: nothing set"
    assert usecase.features.views["employment_features"].ttl == dt.timedelta(days=2)
    for line in (
        "# training:",
        f"#   min_train_rows: {TrainingSpec().min_train_rows}",
        "# gates:",
        "#   primary_metric: roc_auc",
        "# drift:",
        "#   nights_required: 2",
    ):
        assert line in text.splitlines(), line
    import yaml

    lines = text.splitlines()
    block = lines[lines.index("# training:") :]
    block = block[: block.index("")]
    uncommented = "\n".join(line.removeprefix("# ") for line in block)
    assert yaml.safe_load(uncommented)["training"] == TrainingSpec().model_dump(), (
        "the commented defaults are valid YAML of the spec's own defaults"
    )
    assert written.dag_file == tmp_path / "dags" / "employment.py"
    assert written.dag_file.read_text() == dag_file_text("employment")
    assert 'globals().update(build_dags("employment"))' in written.dag_file.read_text()


def test_a_parquet_sample_with_a_numeric_label_becomes_a_regression(usecases, tmp_path):
    frame = panel().drop(columns="employed")
    frame["weekly_pay"] = np.random.default_rng(1).gamma(4.0, 150.0, len(frame)).round(2)
    sample = tmp_path / "pay.parquet"
    frame.to_parquet(sample)
    written = scaffold(usecases, tmp_path, sample, name="pay", label="weekly_pay")
    usecase = load_usecase(usecases.usecases_dir / "pay")
    assert written.task is Task.REGRESSION and usecase.task is Task.REGRESSION
    assert usecase.column("weekly_pay").kind is Kind.FLOAT
    assert usecase.column("weekly_pay").min == 0 and usecase.column("weekly_pay").max is None
    assert usecase.serving.score_field == "predicted_weekly_pay"
    assert usecase.serving.decision_field is None
    assert usecase.column("remote").kind is Kind.BOOL
    assert usecase.primary_metric == "r2"


def test_labels_of_a_classifier_ints_and_yes_no(usecases, tmp_path):
    frame = panel()
    frame["employed"] = frame["employed"].astype(int)
    scaffold(usecases, tmp_path, write_csv(frame, tmp_path / "a.csv"), name="as_ints")
    label = load_usecase(usecases.usecases_dir / "as_ints").column("employed")
    assert (label.kind, label.min, label.max) == (Kind.INT, 0, 1)

    frame["employed"] = frame["employed"].map({1: "yes", 0: "no"})
    written = scaffold(usecases, tmp_path, write_csv(frame, tmp_path / "b.csv"), name="as_words")
    assert load_usecase(usecases.usecases_dir / "as_words").column("employed").kind is Kind.BOOL
    assert any("yes/no" in note for note in written.notes)

    frame["employed"] = frame["employed"].map({"yes": 2, "no": 1})
    with pytest.raises(ScaffoldError, match=r"--label: 'employed' has the two values \[1, 2\]"):
        scaffold(usecases, tmp_path, write_csv(frame, tmp_path / "c.csv"), name="as_twos")


def test_it_refuses_to_overwrite_a_use_case(usecases, tmp_path):
    sample = write_csv(panel(), tmp_path / "people.csv")
    written = scaffold(usecases, tmp_path, sample)
    written.declaration.write_text(written.declaration.read_text() + "# my edit\n")
    with pytest.raises(ScaffoldError, match="already exists"):
        scaffold(usecases, tmp_path, sample)
    assert written.declaration.read_text().endswith("# my edit\n")
    written.declaration.unlink()
    with pytest.raises(ScaffoldError, match=r"employment.py already exists"):
        scaffold(usecases, tmp_path, sample)


@pytest.mark.parametrize(
    ("change", "options", "expected"),
    [
        pytest.param({}, {"label": "salary"}, "--label: no column 'salary'", id="no such label"),
        pytest.param(
            {"person_id": lambda f: "p" + f["person_id"].astype(str)},
            {},
            "--entity: 'person_id' is string: the entity key must be an int column",
            id="text entity key",
        ),
        pytest.param(
            {"observed_at": lambda f: f["observed_at"].dt.strftime("%Y-%m-%d %H:%M:%S")},
            {},
            "--timestamp: 'observed_at' has no time zone",
            id="naive timestamps",
        ),
        pytest.param(
            {"employed": lambda f: f["employed"].where(f["age"] > 30)},
            {},
            "--label: 'employed' has",
            id="empty labels",
        ),
        pytest.param(
            {"sector": lambda f: f["sector"].where(f["age"] > 0)},
            {"task": Task.REGRESSION},
            "--label: 'employed' is bool: a regression label is a number",
            id="bool label of a regression",
        ),
        pytest.param({}, {"name": "Bad-Name"}, "name: 'Bad-Name' must be", id="bad name"),
    ],
)
def test_samples_that_cannot_make_a_use_case(usecases, tmp_path, change, options, expected):
    frame = panel()
    for column, make in change.items():
        frame[column] = make(frame)
    if "observed_at" in change:
        frame.to_csv(tmp_path / "people.csv", index=False)
        sample = tmp_path / "people.csv"
    else:
        sample = write_csv(frame, tmp_path / "people.csv")
    with pytest.raises(ScaffoldError) as error:
        scaffold(usecases, tmp_path, sample, **options)
    assert expected in str(error.value)
    assert not (usecases.usecases_dir).exists() or not any(usecases.usecases_dir.iterdir())


def test_the_dag_file_is_the_shipped_form_and_keeps_to_the_line_length():
    shipped = Path(__file__).resolve().parents[2] / "dags" / "churn.py"
    assert dag_file_text("churn") == shipped.read_text()
    long = dag_file_text("a" * 40)
    assert max(len(line) for line in long.splitlines()) <= 100
    compile(long, "long.py", "exec")


def test_read_sample_reads_as_ingestion_does(tmp_path):
    sample = write_csv(panel(), tmp_path / "people.csv")
    table = read_sample(sample)
    assert str(table.schema.field("observed_at").type) == "timestamp[s, tz=UTC]"
    assert str(table.schema.field("employed").type) == "bool"
    (tmp_path / "people.json").write_text("{}")
    with pytest.raises(ScaffoldError, match="not a CSV or Parquet file"):
        read_sample(tmp_path / "people.json")
    with pytest.raises(ScaffoldError, match="--from: no file"):
        read_sample(tmp_path / "absent.csv")
