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
            "UNRELATED": "x",
        }
    )
    assert settings.home == tmp_path and settings.max_bad_row_fraction == 0.05
    assert settings.build_data_docs is False
    assert settings.lake_dir == tmp_path / "lake" / "customer_activity"


def test_home_is_made_absolute_even_by_default():
    assert Settings.from_env({}).home == Path(".local").resolve()


def test_invalid_values_are_refused():
    with pytest.raises(ValidationError):
        Settings.from_env({"MLOPS_MAX_BAD_ROW_FRACTION": "2"})


def test_readme_documents_every_setting():
    readme = (REPO / "README.md").read_text()
    for variable, default, _ in documented_variables():
        assert f"| `{variable}` | `{default}` |" in readme, variable
