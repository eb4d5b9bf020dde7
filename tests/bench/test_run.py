"""bench/run.py, the orchestrator of `make bench`: it reads every bench's `name: value` lines,
checks the headlines against the issue's targets, renders the table, and records a failed bench
without stopping the run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from bench import run as bench_run
from bench.run import (
    BENCH_NAMES,
    HEADLINES,
    Bench,
    Outcome,
    at_least,
    below,
    headline_rows,
    parse_lines,
    render_table,
    selected,
)


def test_it_reads_name_value_lines_with_their_types_and_ignores_the_rest() -> None:
    figures = parse_lines(
        "bench_tenant: bench-small\n"
        "tickets: 10000\n"
        "inbox_agent_p95_ms: 12.5\n"
        "slow_pages: none\n"
        "media_root: /tmp/helpdesk-bench-media-x\n"
        "a progress line without a colon\n"
        "| a | markdown: row |\n"
        "empty:\n"
    )
    assert figures == {
        "bench_tenant": "bench-small",
        "tickets": 10000,
        "inbox_agent_p95_ms": 12.5,
        "slow_pages": "none",
        "media_root": "/tmp/helpdesk-bench-media-x",
    }


def test_a_latency_target_is_met_only_below_it_and_a_rate_target_at_or_above_it() -> None:
    assert below(50).met(49.9, "full")
    assert not below(50).met(50.0, "full")
    assert at_least(10).met(10.0, "full")
    assert not at_least(10).met(9.99, "full")
    # At small scale a size target is the small run's size.
    assert at_least(1000, small=100).met(100, "small")
    assert not at_least(1000, small=100).met(100, "full")


def test_every_target_the_issue_names_is_in_the_headlines() -> None:
    targets = {
        (headline.bench, headline.metric): headline.target
        for headline in HEADLINES
        if headline.target
    }
    assert targets == {
        ("inbox", "inbox_agent_p95_ms"): below(50),
        ("inbox", "inbox_supervisor_p95_ms"): below(50),
        ("inbox", "ticket_page_p95_ms"): below(50),
        ("dashboard", "dashboard_p95_ms"): below(150),
        ("peer", "ratio_messages_per_second"): at_least(10),
        ("webhooks", "wechat_during_ingest_p99_ms"): below(50),
        ("webhooks", "twilio_during_ingest_p99_ms"): below(50),
        ("ws", "ws_open_after_hold"): at_least(1000, small=100),
        ("ws", "ws_send_to_agent_p95_ms"): below(200),
    }
    assert {headline.bench for headline in HEADLINES} <= set(BENCH_NAMES)


def outcomes() -> dict[str, Outcome]:
    return {
        "inbox": Outcome("ok", seconds=12, figures={"inbox_agent_p95_ms": 31.2}),
        "dashboard": Outcome("ok", seconds=20, figures={"dashboard_p95_ms": 402.0}),
        "peer": Outcome("ok", seconds=60, figures={"ratio_messages_per_second": 12.34}),
        "webhooks": Outcome("failed", seconds=3, exit_code=2),
        "scaling": Outcome("missing", note="bench/scaling.py is not there yet"),
    }


def test_the_headlines_say_met_missed_or_no_figure() -> None:
    rows = {row["metric"]: row for row in headline_rows(outcomes(), "full")}
    assert rows["inbox_agent_p95_ms"]["status"] == "met"
    assert rows["dashboard_p95_ms"]["status"] == "missed"
    assert rows["dashboard_p95_ms"]["target"] == "< 150 ms"
    assert rows["wechat_during_ingest_p99_ms"]["status"] == "no figure"
    assert rows["wechat_during_ingest_p99_ms"]["value"] is None
    assert rows["search_chinese_p95_ms"]["status"] == ""  # no target, no verdict


def test_the_table_shows_values_targets_and_every_bench_with_why_it_did_not_run() -> None:
    facts = {"started_at": "2026-12-01T15:00:00+00:00", "git_revision": "abc1234", "cpu_count": 2}
    table = render_table(headline_rows(outcomes(), "full"), outcomes(), scale="full", facts=facts)
    lines = table.splitlines()
    assert "| figure | value | target | status |" in lines
    assert (
        "| Inbox list p95, agent (`inbox.inbox_agent_p95_ms`) | 31.2 ms | < 50 ms | met |" in lines
    )
    assert (
        "| Supervisor dashboard p95 (`dashboard.dashboard_p95_ms`) | 402 ms | < 150 ms | missed |"
        in lines
    )
    assert any(line.endswith("| 12.3× | ≥ 10× | met |") for line in lines)
    assert "| webhooks | failed (exit 2) | 3 |" in lines
    assert "| scaling | missing: bench/scaling.py is not there yet | 0 |" in lines
    # A small run's verdicts are hints only.
    small = render_table(headline_rows(outcomes(), "small"), outcomes(), scale="small", facts={})
    assert "| 31.2 ms | < 50 ms | (met) |" in small
    assert "Targets are for the full scale" in small


def test_only_and_skip_choose_the_benches_and_unknown_names_are_refused() -> None:
    assert [bench.name for bench in selected("inbox,api", "")] == ["inbox", "api"]
    assert "ws" not in [bench.name for bench in selected("", "ws,peer")]
    with pytest.raises(ValueError, match="unknown bench nope"):
        selected("nope", "")


def fake(name: str, code: str) -> Bench:
    return Bench(name, ("-c", code), small=(), full=(), writes_json=False)


def test_a_failed_bench_is_recorded_with_its_exit_code_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = fake(
        "dashboard",
        "import sys; print('dashboard_p95_ms: 90'); print('boom', file=sys.stderr); sys.exit(3)",
    )
    passing = fake("inbox", "print('inbox_agent_p95_ms: 20.5'); print('tickets: 10')")
    missing = Bench("scaling", ("bench/nowhere.py",), source="bench/nowhere.py")
    options = argparse.Namespace(
        scale="small",
        results=tmp_path,
        no_setup=True,
        benches=[failing, passing, missing],
        timeout=60.0,
        python=sys.executable,
        markdown=tmp_path / "table.md",
    )
    result = bench_run.run(options)

    benches = json.loads(Path(result["json"]).read_text())["benches"]
    assert benches["dashboard"]["status"] == "failed"
    assert benches["dashboard"]["exit_code"] == 3
    assert benches["dashboard"]["figures"] == {"dashboard_p95_ms": 90}
    assert benches["inbox"]["status"] == "ok"
    assert benches["inbox"]["figures"] == {"inbox_agent_p95_ms": 20.5, "tickets": 10}
    assert benches["scaling"]["status"] == "missing"
    log = tmp_path / Path(result["json"]).stem / "dashboard.log"
    assert "boom" in log.read_text()
    assert "| inbox | ok |" in (tmp_path / "table.md").read_text()
    saved = json.loads(Path(result["json"]).read_text())
    assert saved["scale"] == "small"
    assert saved["machine"]["cpu_count"] and "load_average_end" in saved["machine"]


def test_a_bench_past_its_time_is_stopped_and_recorded_as_failed(tmp_path: Path) -> None:
    options = argparse.Namespace(
        scale="small",
        results=tmp_path,
        no_setup=True,
        benches=[fake("ws", "import time; print('ws_visitors: 5', flush=True); time.sleep(60)")],
        timeout=1.0,
        python=sys.executable,
        markdown=None,
    )
    outcome = bench_run.run(options)["benches"]["ws"]
    assert outcome["status"] == "failed"
    assert "stopped after 1 s" in outcome["note"]
    assert outcome["figures"] == {"ws_visitors": 5}


def test_a_bench_that_writes_json_is_read_from_its_file_not_from_what_its_servers_print(
    tmp_path: Path,
) -> None:
    code = (
        "import json, sys; from pathlib import Path\n"
        "print('worker: Warm shutdown (MainProcess)')\n"  # a child server's banner on stdout
        "print('ws_visitors: 100')\n"
        "Path(sys.argv[sys.argv.index('--json') + 1]).write_text(json.dumps({'ws_visitors': 100}))"
    )
    bench = Bench("ws", ("-c", code), small=(), full=())
    options = argparse.Namespace(
        scale="small",
        results=tmp_path,
        no_setup=True,
        benches=[bench],
        timeout=60.0,
        python=sys.executable,
        markdown=None,
    )
    outcome = bench_run.run(options)["benches"]["ws"]
    assert outcome["status"] == "ok"
    assert outcome["figures"] == {"ws_visitors": 100}
