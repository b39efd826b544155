"""No secret is committed: private keys, cloud keys, tokens, Fernet keys, passwords in code or
in connection URLs. Scans every file git tracks or would add (not ignored)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

RULES = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(
        r"aws_secret_access_key\s*[:=]\s*['\"]?[A-Za-z0-9/+]{40}", re.IGNORECASE
    ),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Fernet key": re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"),
    "password in a URL": re.compile(r"://[^/\s:@'\"]+:(?!\$\{|\*\*\*|<)[^@\s/'\"]+@"),
    "hard-coded credential": re.compile(
        r"(?i)\b[\w-]*(?:password|passwd|secret|token|api_key|apikey)\b['\"]?\s*[:=]\s*"
        # The whole right-hand side: a literal built with random parts is not a secret.
        r"['\"](?P<value>[^'\"\s]{8,})['\"](?=[ \t]*(?:$|[,)}\]#;]))",
        re.MULTILINE,
    ),
    "MLflow's old default admin password": re.compile(r"password1234"),
}
# Deliberately wrong credentials that tests send to prove a server refuses them.
ALLOWED_VALUES = {"not-the-password", "wrong-password"}
THIS_FILE = Path(__file__).resolve()


def scan(text: str) -> list[str]:
    found = []
    for rule, pattern in RULES.items():
        for match in pattern.finditer(text):
            value = match.groupdict().get("value")
            if value is not None and (
                value in ALLOWED_VALUES
                or value.startswith(("${", "{{"))
                or re.fullmatch(r"[A-Z][A-Z0-9_]*", value)  # the name of a variable
            ):
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{rule} at line {line}")
    return found


def repository_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [REPO / name for name in listed.split("\0") if name]


def test_no_secret_in_the_repository():
    findings = {}
    for path in repository_files():
        if path.resolve() == THIS_FILE or not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary
        if found := scan(text):
            findings[str(path.relative_to(REPO))] = found
    assert findings == {}


@pytest.mark.parametrize(
    "planted",
    [
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "aws_access_key_id = AKIAABCDEFGHIJKLMNOP",
        'AIRFLOW__CORE__FERNET_KEY: "' + "Zm9v" * 10 + 'YmE=" ',
        "url = 'postgresql://airflow:hunter2hunter2@db:5432/airflow'",
        'password = "correct-horse-battery"',
        'MLFLOW_TRACKING_TOKEN: "0123456789abcdef"',
        "token = 'ghp_" + "a" * 36 + "'",
    ],
)
def test_the_scan_catches_planted_secrets(planted):
    assert scan(f"line one\n{planted}\n")


def test_placeholders_and_required_variables_pass():
    assert not scan("postgresql+psycopg://feast:${FEAST_DB_PASSWORD:?required}@postgres/feast")
    assert not scan("`postgresql+psycopg://feast:***@db:5432/feast`")
    assert not scan('MLFLOW_TRACKING_PASSWORD: "${MLFLOW_ADMIN_PASSWORD:?required}"')
    assert not scan('PASSWORD = "ui-tests-" + os.urandom(12).hex()')


def test_env_file_is_ignored_and_untracked():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO)
    assert ignored.returncode == 0, ".env must be git-ignored"
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", ".env"], cwd=REPO, capture_output=True
    )
    assert tracked.returncode != 0, ".env is tracked"
