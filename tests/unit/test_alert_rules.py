"""The alert rules (deploy/prometheus/alerts.yml) and Alertmanager's routing, checked by
Debian's promtool and amtool: each alert fires on the condition alerts_test.yml forces."""

from __future__ import annotations

import subprocess

import yaml

from tests import prometheus_tools
from tests.conftest import REPO

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
ALERTMANAGER_DIR = REPO / "deploy" / "alertmanager"
RULES = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
ALERTS = [rule for group in RULES["groups"] for rule in group["rules"]]


def _promtool_test(folder) -> subprocess.CompletedProcess:
    promtool = prometheus_tools.require("promtool")["promtool"]
    return subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_alert_fires_on_its_forced_condition():
    done = _promtool_test(PROMETHEUS_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    tested = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    fired = {
        check["alertname"]
        for case in tested["tests"]
        for check in case["alert_rule_test"]
        if check["exp_alerts"]
    }
    assert fired == {rule["alert"] for rule in ALERTS}


def test_an_alert_that_never_fires_fails_its_test(tmp_path):
    # The tests above see each rule's own expression: a rule broken into silence is caught.
    (tmp_path / "alerts_test.yml").write_text((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    for rule in ALERTS:
        broken = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
        for candidate in [r for g in broken["groups"] for r in g["rules"]]:
            if candidate["alert"] == rule["alert"]:
                candidate["expr"] = "vector(1) == 2"
        (tmp_path / "alerts.yml").write_text(yaml.safe_dump(broken))
        done = _promtool_test(tmp_path)
        report = done.stdout + done.stderr
        assert done.returncode != 0 and f"alertname: {rule['alert']}" in report, rule


def test_every_alert_waits_and_says_what_and_where():
    for rule in ALERTS:
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        # The summary names what the alert is about: the model, dataset, DAG or server.
        assert "{{ $labels." in annotations["summary"], rule["alert"]


def test_prometheus_loads_the_rules_compose_mounts_and_alerts_its_alertmanager():
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["services"]
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["prometheus"]["volumes"]}
    for path in config["rule_files"]:
        assert mounts[path] == "./deploy/prometheus/alerts.yml", path
    (target,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    host, port = target.split(":")
    alertmanager = compose[host]
    assert any(p.endswith(f":{port}") for p in alertmanager["ports"])
    assert "./deploy/alertmanager:/etc/alertmanager:ro" in alertmanager["volumes"]
    assert alertmanager["entrypoint"] == ["/bin/sh", "/etc/alertmanager/start.sh"]
    assert alertmanager["environment"]["ALERT_WEBHOOK_URL"] == "${ALERT_WEBHOOK_URL:-}"
    promtool = prometheus_tools.require("promtool")["promtool"]
    done = subprocess.run(
        [promtool, "check", "rules", str(PROMETHEUS_DIR / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_alertmanager_routes_every_alert_to_the_webhook_grouped_by_model():
    amtool = prometheus_tools.require("amtool")["amtool"]
    config = ALERTMANAGER_DIR / "alertmanager.yml"
    done = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    route = yaml.safe_load(config.read_text())["route"]
    assert {"alertname", "model"} <= set(route["group_by"])
    for rule in ALERTS:
        labels = [f"alertname={rule['alert']}", f"severity={rule['labels']['severity']}"]
        done = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.stdout.strip() == "webhook", (rule["alert"], done.stdout, done.stderr)


def test_without_the_tools_the_tests_skip_unless_services_are_required(monkeypatch):
    import pytest

    monkeypatch.setattr(prometheus_tools.shutil, "which", lambda name: None)
    monkeypatch.setattr(prometheus_tools.os, "geteuid", lambda: 1000)  # cannot install
    monkeypatch.delenv("REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get"):
        prometheus_tools.require("promtool")
    monkeypatch.setenv("REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_SERVICES=1"):
        prometheus_tools.require("promtool")
