from __future__ import annotations

import datetime as dt
import json

from mlops_pipeline.data.storage import landing_file
from mlops_pipeline.platform.cli import main


def test_generate_ingest_and_status(settings, capsys):
    assert (
        main(["generate", "--date", "2025-06-02", "--rows", "500", "--scenario", "out_of_range"])
        == 0
    )
    generated = json.loads(capsys.readouterr().out)
    assert generated["path"] == str(landing_file(settings.landing_dir, dt.date(2025, 6, 2)))

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
