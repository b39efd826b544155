"""Debian's Prometheus, Alertmanager and their command-line tools, for the alerting tests.

Installed with apt-get when missing and the tests run as root (as the Makefile's `chromium`
target installs Chromium); otherwise the tests skip with the reason, or fail under
REQUIRE_SERVICES=1 (tests.conftest.skip_or_fail). No systemd here: the packages' services are
never started, the tests run the binaries themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.conftest import skip_or_fail

# Binary -> the Debian package that ships it (Prometheus 2.42, Alertmanager 0.25 on bookworm).
PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
}
INSTALL_SECONDS = 600


def _install(packages: list[str]) -> str:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=INSTALL_SECONDS)
    if done.returncode != 0:
        # A fresh machine has no package index yet.
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=300)
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=INSTALL_SECONDS
        )
    return done.stderr[-500:]


def require(*binaries: str) -> dict[str, str]:
    """The path of each binary, installing its package first when it is missing."""
    missing = [name for name in binaries if shutil.which(name) is None]
    detail = ""
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        detail = _install(sorted({PACKAGES[name] for name in missing}))
        missing = [name for name in binaries if shutil.which(name) is None]
    if missing:
        skip_or_fail(
            f"{', '.join(missing)} not installed: the alerting tests install Debian's "
            f"{' and '.join(sorted({PACKAGES[n] for n in missing}))} with apt-get (needs root "
            f"and Debian's package index). {detail}".strip()
        )
    return {name: str(shutil.which(name)) for name in binaries}
