from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mlops_pipeline.config import Settings, documented_variables
from tests.conftest import REPO


def test_settings_come_from_prefixed_environment_variables(tmp_path):
    settings = Settings.from_env(
        {
            "MLOPS_HOME": str(tmp_path),
            "MLOPS_MAX_BAD_ROW_FRACTION": "0.05",
            "MLOPS_BUILD_DATA_DOCS": "false",
            "MLOPS_USECASE": "churn",
            "UNRELATED": "x",
        }
    )
    assert settings.home == tmp_path and settings.max_bad_row_fraction == 0.05
    assert settings.build_data_docs is False
    assert settings.lake_dir == tmp_path / "lake" / settings.spec.dataset
    assert settings.feast_dir == tmp_path / "feast" / "churn"


def test_paths_follow_the_use_case(tmp_path):
    churn = Settings(home=tmp_path, usecase="churn")
    demand = churn.for_usecase("store_demand")
    assert churn.lake_dir != demand.lake_dir and churn.feast_dir != demand.feast_dir
    assert demand.lake_dir == tmp_path / "lake" / demand.spec.dataset
    assert demand.feast_project == "store_demand"
    assert Settings(usecase="churn", feast_project_prefix="staging_").feast_project == (
        "staging_churn"
    )


def test_the_use_case_must_be_named_when_several_are_declared(tmp_path):
    from mlops_pipeline.failures import SpecError

    with pytest.raises(SpecError, match="declares 2 use cases .churn, store_demand.: name one"):
        _ = Settings(home=tmp_path).spec
    only = tmp_path / "usecases"
    (only / "churn").mkdir(parents=True)
    (only / "churn" / "usecase.yaml").write_text((REPO / "usecases/churn/usecase.yaml").read_text())
    assert Settings(usecases_dir=only).usecase_name == "churn"


def test_overrides_are_merged_into_the_declaration():
    settings = Settings(
        usecase="churn",
        usecase_overrides='{"churn": {"training": {"min_train_rows": 50}}, "other": {"x": 1}}',
    )
    assert settings.spec.training.min_train_rows == 50
    assert settings.spec.training.split.test_partitions == 3


def test_server_urls_and_containers_are_per_use_case():
    settings = Settings(
        usecase="store_demand",
        serving_url="http://model-server-{usecase}:8080",
        model_server_container="mlops-{usecase}-1",
    )
    assert settings.model_server_url == "http://model-server-store_demand:8080"
    assert settings.model_server_container_name == "mlops-store_demand-1"


def test_home_is_made_absolute_even_by_default():
    assert Settings.from_env({}).home == Path(".local").resolve()


def test_invalid_values_are_refused():
    with pytest.raises(ValidationError):
        Settings.from_env({"MLOPS_MAX_BAD_ROW_FRACTION": "2"})


def test_readme_documents_every_setting():
    readme = (REPO / "docs" / "configuration.md").read_text()
    for variable, default, _ in documented_variables():
        assert f"| `{variable}` | `{default}` |" in readme, variable
