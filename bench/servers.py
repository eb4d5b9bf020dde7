"""Starting, watching and stopping the real server processes a benchmark drives.

The production shape is uvicorn serving ``helpdesk.asgi`` and a Celery worker (prefork) filing
what it stores. The benches start both as child processes in sessions of their own, so one
signal to the process group stops a server and every worker it forked, whatever happens to the
bench. Memory is read from ``/proc`` (Linux only): no extra dependency for a few numbers.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROC = Path("/proc")


def free_port() -> int:
    """A TCP port nobody listens on right now, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parse_processes(text: str) -> list[int]:
    """``"1,2,4"`` as ``[1, 2, 4]``: positive, distinct, in the order given."""
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or any(count < 1 for count in counts) or len(set(counts)) != len(counts):
        raise ValueError(f"process counts must be distinct positive integers: {text!r}")
    return counts


def status_megabytes(status_text: str, field: str = "VmRSS") -> float:
    """A ``kB`` field of ``/proc/<pid>/status`` (or ``smaps_rollup``) in MB; 0 when absent."""
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", status_text, re.MULTILINE)
    return round(int(match.group(1)) / 1024, 1) if match else 0.0


def rss_megabytes(pid: int) -> float:
    """Resident memory of a process (shared pages counted in full); 0 when it is gone."""
    try:
        return status_megabytes((PROC / str(pid) / "status").read_text(), "VmRSS")
    except OSError:
        return 0.0


def pss_megabytes(pid: int) -> float:
    """Proportional set size: shared pages split between the processes sharing them, so forked
    workers' copy-on-write pages are not counted once per worker; 0 when unreadable."""
    try:
        return status_megabytes((PROC / str(pid) / "smaps_rollup").read_text(), "Pss")
    except OSError:
        return 0.0


def parent_of(stat_text: str) -> int:
    """The parent pid from ``/proc/<pid>/stat`` (the command name may hold spaces and ``)``)."""
    return int(stat_text.rsplit(")", 1)[1].split()[1])


def cpu_seconds_of_stat(stat_text: str, ticks_per_second: int) -> float:
    """User plus system CPU time from ``/proc/<pid>/stat`` (utime and stime, fields 14-15)."""
    fields = stat_text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def cpu_seconds(pids: Iterable[int]) -> float:
    """CPU time the processes have used so far (those gone count 0): compared before and after
    a run it gives the CPU a run cost, whatever else the machine was doing meanwhile."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in set(pids):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += cpu_seconds_of_stat((PROC / str(pid) / "stat").read_text(), ticks)
    return total


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid``, oldest pid first."""
    children = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if parent_of((entry / "stat").read_text()) == pid:
                children.append(int(entry.name))
    return sorted(children)


def command_line(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def web_processes(server_pid: int, workers: int) -> list[int]:
    """The processes that serve requests: the server itself when it runs one worker, else its
    spawned workers (not multiprocessing's resource tracker)."""
    if workers == 1:
        return [server_pid]
    return [pid for pid in children_of(server_pid) if "resource_tracker" not in command_line(pid)]


def memory_summary(prefix: str, pids: Iterable[int]) -> dict[str, float]:
    """Average and largest RSS, and average PSS, of ``pids`` as ``<prefix>_rss_mb`` etc."""
    rss = [rss_megabytes(pid) for pid in pids]
    pss = [pss_megabytes(pid) for pid in pids]
    rss = [value for value in rss if value]
    return {
        f"{prefix}_rss_mb": round(sum(rss) / len(rss), 1) if rss else 0.0,
        f"{prefix}_rss_mb_max": max(rss, default=0.0),
        f"{prefix}_pss_mb": round(sum(pss) / len(pss), 1) if pss else 0.0,
    }


class Server:
    """A child process in its own session, its stderr copied to ours line by line so the bench
    can wait for what it logs."""

    def __init__(self, name: str, command: list[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=dict(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: stopped with every child
        )
        self._copier = threading.Thread(target=self._copy_stderr, daemon=True)
        self._copier.start()

    def _copy_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            sys.stderr.write(f"[{self.name}] {line}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def logged(self, text: str) -> int:
        """How many lines so far contain ``text``."""
        return sum(text in line for line in list(self.lines))

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM to the process we started (Celery's warm shutdown lets its pool finish the
        tasks in hand; uvicorn stops its workers), then SIGKILL to whatever of its group is left
        after ``timeout`` or outlived it. Short enough that a bench stopped by ``bench/run.py``
        (SIGTERM, then SIGKILL 30 s later) has stopped its servers before that."""
        if self.alive():
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()
        self._copier.join(timeout=5)


def start_uvicorn(port: int, workers: int, env: Mapping[str, str]) -> Server:
    """``uvicorn helpdesk.asgi:application --workers N`` on 127.0.0.1:port."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "helpdesk.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "info",  # one "Started server process" line per worker: how the bench knows they are up
    ]
    return Server(f"uvicorn x{workers}", command, env)


def start_celery_worker(concurrency: int, env: Mapping[str, str], *, name: str) -> Server:
    """A prefork Celery worker with ``concurrency`` pool processes on the default queue."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "helpdesk",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "warning",
        "--hostname",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    return Server(f"celery x{concurrency}", command, env)


def wait_until_serving(server: Server, port: int, workers: int, timeout: float = 120) -> None:
    """Until every uvicorn worker has loaded the app and ``/healthz`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError("uvicorn exited during start-up (its stderr is above)")
        if server.logged("Started server process") >= workers and healthz(port):
            return
        time.sleep(0.2)
    raise RuntimeError(f"uvicorn did not start {workers} workers within {timeout:.0f} s")


def healthz(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def wait_for_pool(worker: Server, concurrency: int, timeout: float = 120) -> list[int]:
    """The worker's pool children, once all ``concurrency`` of them are forked."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.alive():
            raise RuntimeError("the Celery worker exited during start-up (its stderr is above)")
        children = children_of(worker.pid)
        if len(children) >= concurrency:
            return children
        time.sleep(0.2)
    raise RuntimeError(f"the Celery worker did not fork {concurrency} processes in {timeout} s")
