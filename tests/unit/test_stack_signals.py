"""``make airflow`` stops on one SIGTERM to make's process group (make forwards it, so the stack
gets it twice) and a later signal kills what ignores SIGTERM: through ``make`` itself, the local
stack's own supervision and loop, with cheap real processes in place of Airflow's (a server on
a loopback port, a grandchild in a session of its own, one orphaned by its parent)."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mlops_pipeline.platform.local_stack.shutdown import StopRequested, StopRequests

MARKER = "STACK_SIGNALS_TEST"
SLEEPER = (
    "import signal, sys, time\n"
    "if sys.argv[1] == '1':\n"
    "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "time.sleep(600)\n"
)
SERVER = f"""
import os, signal, socket, subprocess, sys, time
here, ignore = sys.argv[1], sys.argv[2]
if ignore == "1":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
fd = s.fileno()
sleeper = [sys.executable, "-c", {SLEEPER!r}, ignore]
# A grandchild in a session of its own, holding the port (as a server's worker may).
subprocess.Popen(sleeper, start_new_session=True, pass_fds=(fd,))
# A grandchild whose parent exits: nobody's descendant any more, still in this session.
orphan = "import subprocess, sys; subprocess.Popen(sys.argv[2:], pass_fds=(int(sys.argv[1]),))"
subprocess.run([sys.executable, "-c", orphan, str(fd), *sleeper], pass_fds=(fd,), check=True)
with open(os.path.join(here, "port.tmp"), "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(os.path.join(here, "port.tmp"), os.path.join(here, "port"))
time.sleep(600)
"""
STUB = f"""
import sys, time
from pathlib import Path
from mlops_pipeline.platform.local_stack.processes import Component, check_alive, kill_all, stop_all
from mlops_pipeline.platform.local_stack.shutdown import serve

here, stop_timeout, ignore = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]


class Stub:
    components = [
        Component("server", [sys.executable, "-c", {SERVER!r}, str(here), ignore], here / "s.log"),
        Component("plain", [sys.executable, "-c", {SLEEPER!r}, ignore], here / "p.log"),
    ]

    def start(self):
        for component in self.components:
            component.start({{"STACK_SIGNALS_TEST": str(here)}}, cwd=here)
        while not (here / "port").exists():
            check_alive(self.components)
            time.sleep(0.05)

    def banner(self):
        return "up"

    def check_alive(self):
        check_alive(self.components)

    def stop(self):
        stop_all(self.components, stop_timeout)

    def kill(self):
        kill_all(self.components)


sys.exit(serve(Stub(), poll_seconds=0.2))
"""


def _make_airflow(tmp_path: Path, stop_timeout: float, ignore_sigterm: bool) -> subprocess.Popen:
    """``make airflow`` in a Makefile of its own, in a new session (its group is its pid)."""
    (tmp_path / "stub.py").write_text(STUB)
    (tmp_path / "Makefile").write_text(
        # As the repository's Makefile: bash, one simple command.
        f"SHELL := /bin/bash\nairflow:\n"
        f"\t{sys.executable} {tmp_path / 'stub.py'} {tmp_path} {stop_timeout} "
        f"{int(ignore_sigterm)}\n"
    )
    return subprocess.Popen(
        ["make", "-s", "-C", str(tmp_path), "airflow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, MARKER: str(tmp_path)},
    )


def _up(tmp_path: Path, make: subprocess.Popen) -> tuple[int, set[int]]:
    """The stub's port and every process under make: descendants and their sessions' members
    (the orphan is only found by its session)."""
    assert make.stdout is not None
    ready, _, _ = select.select([make.stdout], [], [], 30)
    assert ready and make.stdout.readline() == "up\n", "the banner, once everything started"
    tree = psutil.Process(make.pid).children(recursive=True)
    sessions = {os.getsid(p.pid) for p in tree} - {os.getsid(0)}
    pids = {p.pid for p in tree}
    for pid in psutil.pids():
        try:
            if os.getsid(pid) in sessions:
                pids.add(pid)
        except OSError:
            continue
    sleepers = [pid for pid in pids if psutil.Process(pid).cmdline()[1:3] == ["-c", SLEEPER]]
    assert len(sleepers) == 3, "the component, its own-session child and the orphan"
    return int((tmp_path / "port").read_text()), pids


def _survivors(pids: set[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def leftovers_killed(tmp_path):
    """Whatever a failed test leaves, found by the variable every process of it inherits."""
    yield
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARKER) == str(tmp_path):
                process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


@pytest.mark.usefixtures("leftovers_killed")
def test_sigterm_twice_to_make_airflows_group_stops_everything_and_frees_the_port(tmp_path):
    make = _make_airflow(tmp_path, stop_timeout=20, ignore_sigterm=False)
    port, pids = _up(tmp_path, make)
    assert not _port_free(port)
    os.killpg(make.pid, signal.SIGTERM)
    os.killpg(make.pid, signal.SIGTERM)
    _, err = make.communicate(timeout=30)
    assert _survivors(pids) == []
    assert _port_free(port)
    assert "Traceback" not in err


@pytest.mark.usefixtures("leftovers_killed")
def test_a_later_signal_kills_what_ignores_sigterm_at_once(tmp_path):
    make = _make_airflow(tmp_path, stop_timeout=120, ignore_sigterm=True)
    port, pids = _up(tmp_path, make)
    os.killpg(make.pid, signal.SIGTERM)
    time.sleep(1.5)
    assert len(_survivors(pids)) > 1, "SIGTERM is ignored: the stop waits"
    os.killpg(make.pid, signal.SIGTERM)
    began = time.monotonic()
    _, err = make.communicate(timeout=20)  # not the stop's 120 s
    assert time.monotonic() - began < 20
    assert _survivors(pids) == []
    assert _port_free(port)
    assert "again: killing what is left" in err and "Traceback" not in err


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_signal_stops_a_repeat_is_the_same_request_and_a_later_one_kills():
    clock, kills = Clock(), []
    requests = StopRequests(kill=lambda: kills.append(clock.now), clock=clock)
    with pytest.raises(StopRequested):
        requests.handle(signal.SIGTERM)
    clock.now += 0.01  # make forwarding the SIGTERM its group already got
    requests.handle(signal.SIGTERM)
    assert kills == []
    clock.now += 2
    requests.handle(signal.SIGINT)
    clock.now += 2
    requests.handle(signal.SIGINT)
    assert kills == [102.01]


def test_once_stopping_no_signal_raises_and_a_start_defers_the_first():
    stopping = StopRequests(kill=lambda: None)
    stopping.stopping = True
    stopping.handle(signal.SIGTERM)  # would abort the stop if it raised

    starting = StopRequests(kill=lambda: None)
    with pytest.raises(StopRequested), starting.deferred():
        starting.handle(signal.SIGTERM)
        reached = True  # the child just started is recorded before the stop begins
    assert reached
