"""Supervision of the local stack's processes: start each in its own session with its log, notice
one exiting, see what they listen on, and stop them all, children included.

A component's processes are its leader, every descendant (one that started a session of its
own included) and whatever is left in its session (a grandchild whose parent exited is no longer
anyone's descendant here, but it keeps its session)."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from mlops_pipeline.platform.local_stack import StackError
from mlops_pipeline.platform.local_stack.shutdown import deferred, stopping

if TYPE_CHECKING:
    import psutil


@dataclass
class Component:
    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self, env: Mapping[str, str], cwd: Path) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop_all)
        # Its own session: Ctrl-C reaches only the stack, which stops everything in order.
        # Deferred: a stop signal between the fork and the assignment would lose the child.
        with deferred():
            self.process = subprocess.Popen(
                self.command,
                env=dict(env),
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=cwd,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def check_alive(components: Iterable[Component]) -> None:
    """``StackError`` with the end of its log when a component has exited."""
    for component in components:
        if not component.running():
            code = component.process.returncode if component.process else None
            raise StackError(
                f"{component.name} exited ({code}); log {component.log_path}:\n" + component.tail()
            )


def exposed_sockets(components: Iterable[Component]) -> list[str]:
    """``<component>: <address>:<port>`` for every TCP socket a component (or a child of it)
    listens on beyond the loopback interface."""
    import psutil

    exposed = []
    for component in components:
        if component.process is None:
            continue
        for process in _descendants([component.process.pid]):
            try:
                sockets = process.net_connections(kind="tcp")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            exposed += [
                f"{component.name}: {s.laddr.ip}:{s.laddr.port}"
                for s in sockets
                if s.status == psutil.CONN_LISTEN and not _loopback(s.laddr.ip)
            ]
    return sorted(set(exposed))


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _descendants(pids: Iterable[int]) -> list[psutil.Process]:
    import psutil

    found: list[psutil.Process] = []
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            found += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return found


def members(components: Iterable[Component]) -> list[psutil.Process]:
    """Every live process of ``components`` (see the module's docstring)."""
    import psutil

    components = list(components)
    running = [c.process.pid for c in components if c.process is not None and c.running()]
    found = {p.pid: p for p in _descendants(running)}
    # A session outlives its leader, and Linux reuses no pid that still names a session.
    sessions = {c.process.pid for c in components if c.process is not None}
    for pid in psutil.pids():
        try:
            if pid not in found and os.getsid(pid) in sessions:
                found[pid] = psutil.Process(pid)
        except (OSError, psutil.NoSuchProcess):
            continue
    return [p for p in found.values() if _alive(p)]


def _alive(process: psutil.Process) -> bool:
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _send(processes: Iterable[psutil.Process], signum: int) -> None:
    import psutil

    for process in processes:
        try:
            process.send_signal(signum)
        except psutil.NoSuchProcess:
            pass


def kill_all(components: Iterable[Component]) -> None:
    """SIGKILL every process of ``components`` now."""
    _send(members(components), signal.SIGKILL)


def stop_all(components: list[Component], timeout: float) -> None:
    """SIGTERM every process of ``components``, wait up to ``timeout``, then SIGKILL what is
    left, until nothing is; uninterrupted by stop signals. Idempotent."""
    import psutil

    stopping()
    everything = members(components)
    _send(everything, signal.SIGTERM)
    psutil.wait_procs(everything, timeout=timeout)
    # A process started while the others stopped (a scheduler's new worker) is found again.
    for _ in range(5):
        left = members(components)
        if not left:
            break
        _send(left, signal.SIGKILL)
        psutil.wait_procs(left, timeout=5)
    for component in components:
        if component.process is not None:
            component.process.wait(timeout=5)
        if component._log is not None:
            component._log.close()
