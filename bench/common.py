"""Shared helpers: medians, peak memory of a child process, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def median(values: list[float]) -> float:
    return statistics.median(values)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def rss_bytes() -> int:
    """This process's resident memory now."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """This process's own peak resident memory.

    Not ``getrusage().ru_maxrss``: on Linux, exec folds the parent's peak into it, and Python
    starts children with vfork, so a child of a big bench process would report the parent's
    peak (a 28 MiB child of an 800 MiB parent reports 828 MiB). VmHWM belongs to the child's
    own address space."""
    return _status_kib("VmHWM") * 1024


def cpu_times() -> list[int]:
    """The machine's CPU time so far by kind (/proc/stat's first line: user, nice, system,
    idle, iowait, irq, softirq, steal), in clock ticks."""
    with open("/proc/stat") as stat:
        return [int(field) for field in stat.readline().split()[1:9]]


def stolen_share(before: list[int], after: list[int]) -> float:
    """Of the CPU time the machine wanted between two ``cpu_times``, the share the hypervisor
    gave to others (steal): on a shared VM, what moves a p99 from one run to the next."""
    used = [b - a for a, b in zip(before, after, strict=True)]
    wanted = sum(used) - used[3] - used[4]  # all but idle and iowait
    return used[7] / wanted if wanted else 0.0


def machine() -> str:
    cpus = os.cpu_count()
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()}, {cpus} cores, {mem_gib:.0f} GiB, Python {platform.python_version()}"
    )


def run_python(code: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,  # the child imports bench.common from here
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def save(name: str, payload: dict[str, Any]) -> Path:
    home = Path(os.environ.get("MLOPS_HOME", REPO / ".local"))
    path = home / "bench" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path
