"""Supervision of the local stack's processes: start each in its own session with its log, notice
one exiting, see what they listen on, and stop them all, children included."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from mlops_pipeline.platform.local_stack import StackError


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
                sockets = process.net_connections(kind="tcp")  # type: ignore[attr-defined]
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


def _descendants(pids: Iterable[int]) -> list[object]:
    import psutil

    found = []
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            found += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return found


def stop_all(components: list[Component], timeout: float) -> None:
    """SIGTERM every started process and its children, wait, then SIGKILL what is left."""
    import psutil

    started = [c.process.pid for c in components if c.process is not None]
    everything = _descendants(started)
    for component in components:
        if component.process is not None and component.running():
            try:
                os.killpg(component.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    _, alive = psutil.wait_procs(everything, timeout=timeout)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    for component in components:
        if component.process is not None:
            component.process.wait(timeout=5)
        if component._log is not None:
            component._log.close()
