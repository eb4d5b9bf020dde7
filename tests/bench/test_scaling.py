"""bench/scaling.py's arithmetic and process handling: the figures it prints mean what their
names say, and every process it starts is gone when it stops."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from bench.scaling import Posted, run_figures, with_speedups
from bench.servers import (
    Server,
    children_of,
    cpu_seconds,
    cpu_seconds_of_stat,
    parent_of,
    parse_processes,
    rss_megabytes,
    status_megabytes,
)


def test_it_reads_process_counts_in_the_order_given() -> None:
    assert parse_processes("1,2,4") == [1, 2, 4]
    assert parse_processes("4, 1") == [4, 1]
    for bad in ("", "0,2", "2,2", "-1"):
        with pytest.raises(ValueError):
            parse_processes(bad)


def test_it_reads_memory_fields_in_megabytes() -> None:
    status = "Name:\tpython\nVmPeak:\t  300000 kB\nVmRSS:\t  131072 kB\n"
    assert status_megabytes(status) == 128.0
    assert status_megabytes("Rss: 2048 kB\nPss:    1024 kB\n", "Pss") == 1.0
    assert status_megabytes(status, "Pss") == 0.0
    assert rss_megabytes(os.getpid()) > 10
    assert rss_megabytes(2**22 + 12345) == 0.0  # no such process


def test_it_finds_the_parent_even_when_the_command_name_has_spaces_and_parens() -> None:
    assert parent_of("4242 (uvicorn) x) S 17 4242 4242 0 -1") == 17


def test_it_counts_user_and_system_cpu_time() -> None:
    stat = "4242 (celery worker) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0"
    assert cpu_seconds_of_stat(stat, 100) == 3.0
    assert cpu_seconds([os.getpid()]) > 0
    assert cpu_seconds([2**22 + 12345]) == 0.0  # gone: counts nothing


def test_it_prints_each_count_and_the_speedup_over_the_first() -> None:
    by_n = {
        1: {"filed_per_second": 10.0, "answers_per_second": 40.0, "failures": 0},
        2: {"filed_per_second": 18.0, "answers_per_second": 60.0, "failures": 0},
        4: {"filed_per_second": 19.0, "answers_per_second": 30.0, "failures": 0},
    }
    flat = with_speedups(by_n)
    assert flat["filed_per_second_n2"] == 18.0
    assert flat["failures_n4"] == 0
    assert flat["speedup_n2"] == 1.8
    assert flat["speedup_n4"] == 1.9
    assert flat["answers_speedup_n4"] == 0.75
    assert "speedup_n1" not in flat


def test_filed_per_second_runs_from_the_first_post_to_the_last_message_filed() -> None:
    started = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    posted = Posted(times=[0.010, 0.020, 0.030, 0.040], started_at=started, seconds=2.0)
    outcome = {
        "filed": 4,
        "ignored": 1,
        "failed": 0,
        "duplicate": 0,
        "exactly_once": True,
        "last_filed_at": started + timedelta(seconds=8),
    }
    figures = run_figures(4, posted, outcome)
    assert figures["answers_per_second"] == 2.0
    assert figures["answer_p50_ms"] == 20.0
    assert figures["filed_seconds"] == 8.0
    assert figures["filed_per_second"] == 0.5
    assert figures["failures"] == 0


def test_a_refused_post_or_an_unfiled_message_is_a_failure() -> None:
    started = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    posted = Posted(times=[0.01, 0.01, 0.01], failures=1, started_at=started, seconds=1.0)
    outcome = {
        "filed": 1,
        "ignored": 0,
        "failed": 1,
        "duplicate": 0,
        "exactly_once": False,
        "last_filed_at": started + timedelta(seconds=1),
    }
    assert run_figures(3, posted, outcome)["failures"] == 3  # one refused, two not filed


def test_stopping_a_server_stops_the_processes_it_forked() -> None:
    forks_a_child = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('forked', file=sys.stderr, flush=True)\n"
        "time.sleep(60)\n"
    )
    server = Server("sleeper", [sys.executable, "-c", forks_a_child], os.environ)
    deadline = time.monotonic() + 30
    while not (server.logged("forked") and children_of(server.pid)):
        assert time.monotonic() < deadline, "the test process did not start its child"
        time.sleep(0.05)
    child = children_of(server.pid)[0]

    server.stop(timeout=5)

    assert not server.alive()
    deadline = time.monotonic() + 5
    while rss_megabytes(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rss_megabytes(child) == 0.0
