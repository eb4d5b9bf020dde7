"""Every benchmark in one run, at a chosen scale: one JSON result and one table of the headlines.

``make bench SCALE=small`` (a quick look, minutes) or ``make bench SCALE=full`` (the figures of
docs/performance.md: a million tickets, hours) runs ``python -m bench.run --scale ...`` on the
bench database as the app's role. It migrates the database and generates the scale's data
(``bench.generate`` writes nothing when the data is complete, so this is cheap after the first
time), then runs each benchmark as a subprocess with the arguments of ``BENCHES``. Each bench's
stderr goes to ``bench/results/bench-<scale>-<time>/<bench>.log``; its ``name: value`` lines (and
its ``--json`` file) become its figures. A bench that fails is recorded with its exit code and
the run goes on. The run ends with ``bench/results/bench-<scale>-<time>.json`` (machine, scale,
every bench's figures and seconds) and a markdown table of ``HEADLINES``, each against its
target, on stdout (``--markdown PATH`` writes it to a file too). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SCALES = ("small", "full")
LINE = re.compile(r"^([A-Za-z][\w.\-]*): (.*)$")


@dataclass(frozen=True)
class Bench:
    """One benchmark: how to start it (after ``python``) and its arguments at each scale."""

    name: str
    command: tuple[str, ...]
    # "{database}" in an argument becomes the bench database's name.
    small: tuple[str, ...] = ()
    full: tuple[str, ...] = ()
    source: str = ""  # the file that must exist for it to run (a bench still being written)
    writes_json: bool = True  # takes --json PATH


def script(path: str) -> tuple[str, ...]:
    return (path,)


def module(name: str) -> tuple[str, ...]:
    return ("-m", name)


# The data every scale needs: ``--tickets`` in all, over ``--tenants`` merchants, the first
# (``--tenant``) holding half. Inbox, dashboard and API read that first merchant.
DATA = {
    "small": ("--tickets", "20000", "--tenants", "10", "--tenant", "bench-small"),
    "full": ("--tickets", "1000000", "--tenants", "100", "--tenant", "bench-1m"),
}
TENANT = {"small": "bench-small", "full": "bench-1m"}

# The one table of what runs, in order, with the arguments of each scale.
BENCHES: tuple[Bench, ...] = (
    Bench(
        "ingest",
        script("bench/ingest.py"),
        small=(
            *("--messages", "200", "--workers", "2", "--worker-messages", "100"),
            *("--no-progress", "--cleanup"),
        ),
        full=(
            *("--messages", "3000", "--workers", "2", "--worker-messages", "2000"),
            *("--no-progress", "--cleanup"),
        ),
    ),
    Bench(
        "peer",
        script("bench/peer.py"),
        # Its own django-helpdesk database beside each bench database, so quick runs in several
        # bench databases do not seed one another's; at full, the lead's seeded one is reused.
        small=(
            "--allow-peer-failures",
            *("--messages", "100", "--seed-tickets", "3000", "--list-runs", "10"),
            *("--peer-db", "{database}_peer_3000"),
        ),
        # The second merchant of the full set (96,624 tickets, among a million in the same
        # tables) against a django-helpdesk of as many: the peer's search reads its whole
        # table per request (about 5 s at 100,000), so at the first merchant's 500,000 the
        # list phase alone would take most of an hour.
        full=(
            "--allow-peer-failures",
            *("--project-tenant", f"{TENANT['full']}-2", "--seed-tickets", "96624"),
            *("--list-runs", "20"),
        ),
    ),
    Bench(
        "inbox",
        module("bench.inbox"),
        small=("--tenant", TENANT["small"], "--runs", "10"),
        full=("--tenant", TENANT["full"], "--runs", "50"),
    ),
    Bench(
        "dashboard",
        module("bench.dashboard"),
        small=("--tenant", TENANT["small"], "--runs", "10", "--metric-runs", "3"),
        full=("--tenant", TENANT["full"], "--runs", "50", "--metric-runs", "10"),
    ),
    Bench(
        "api",
        module("bench.api"),
        small=("--tenant", TENANT["small"], "--runs", "10", "--deep-pages", "3"),
        full=("--tenant", TENANT["full"], "--runs", "50"),
    ),
    Bench(
        "webhooks",
        script("bench/webhooks.py"),
        small=("--pushes", "100", "--warmup", "10", "--ingest-alone-seconds", "5"),
        full=("--pushes", "1000"),
    ),
    Bench(
        "ws",
        script("bench/ws.py"),
        small=("--visitors", "100", "--messages", "20", "--hold", "2", "--rate", "10"),
        full=("--visitors", "1000", "--messages", "200"),
    ),
    Bench(
        "routing",
        script("bench/routing.py"),
        small=("--arrivals", "100", "--agents", "10", "--workers", "2"),
        full=("--arrivals", "1000", "--agents", "50", "--workers", "4"),
    ),
    Bench(
        "scaling",
        script("bench/scaling.py"),
        small=("--processes", "1,2", "--messages", "100"),
        full=("--processes", "1,2,4"),
        source="bench/scaling.py",
    ),
)
BENCH_NAMES = tuple(bench.name for bench in BENCHES)


@dataclass(frozen=True)
class Target:
    """A figure's target: ``below`` (``<``) or ``at_least`` (``>=``) a threshold, set for the
    full scale; ``small`` replaces the threshold at small scale where the size is the target
    (1,000 sockets held: all 100 of the small run)."""

    kind: str  # "below" or "at_least"
    full: float
    small: float | None = None

    def threshold(self, scale: str) -> float:
        return self.small if scale == "small" and self.small is not None else self.full

    def met(self, value: float, scale: str) -> bool:
        limit = self.threshold(scale)
        return value < limit if self.kind == "below" else value >= limit

    def describe(self, scale: str, unit: str) -> str:
        sign = "<" if self.kind == "below" else "≥"
        return f"{sign} {with_unit(format_value(self.threshold(scale)), unit)}"


def below(full: float, small: float | None = None) -> Target:
    return Target("below", full, small)


def at_least(full: float, small: float | None = None) -> Target:
    return Target("at_least", full, small)


@dataclass(frozen=True)
class Headline:
    """A row of the table: a bench's figure, its unit and its target (if the issue sets one)."""

    label: str
    bench: str
    metric: str
    unit: str = ""
    target: Target | None = None


# The figures the issue asks for, with its targets (at full scale), in one place.
HEADLINES: tuple[Headline, ...] = (
    Headline("Inbox list p95, agent", "inbox", "inbox_agent_p95_ms", "ms", below(50)),
    Headline("Inbox list p95, supervisor", "inbox", "inbox_supervisor_p95_ms", "ms", below(50)),
    Headline("Ticket page p95", "inbox", "ticket_page_p95_ms", "ms", below(50)),
    Headline("Search p95, Chinese", "inbox", "search_chinese_p95_ms", "ms"),
    Headline("Search p95, English", "inbox", "search_english_p95_ms", "ms"),
    Headline("Supervisor dashboard p95", "dashboard", "dashboard_p95_ms", "ms", below(150)),
    Headline("API ticket list p95", "api", "tickets_list_p95_ms", "ms"),
    Headline("Email ingest, one process", "ingest", "ingest_messages_per_second", "msg/s"),
    Headline("Email ingest, project", "peer", "project_messages_per_second", "msg/s"),
    Headline("Email ingest, django-helpdesk", "peer", "peer_messages_per_second", "msg/s"),
    Headline(
        "Ingest, times django-helpdesk's rate",
        "peer",
        "ratio_messages_per_second",
        "×",
        at_least(10),
    ),
    Headline("Ticket list p95, times faster than django-helpdesk", "peer", "ratio_list_p95", "×"),
    Headline("Search p95, times faster than django-helpdesk", "peer", "ratio_search_p95", "×"),
    Headline(
        "WeChat push p99 during ingest", "webhooks", "wechat_during_ingest_p99_ms", "ms", below(50)
    ),
    Headline(
        "Twilio call webhook p99 during ingest",
        "webhooks",
        "twilio_during_ingest_p99_ms",
        "ms",
        below(50),
    ),
    Headline(
        "Chat sockets open after the hold",
        "ws",
        "ws_open_after_hold",
        "",
        at_least(1000, small=100),
    ),
    Headline(
        "Chat message to agent p95 (fan-out)", "ws", "ws_send_to_agent_p95_ms", "ms", below(200)
    ),
    Headline(
        "Routing, concurrent assignments", "routing", "concurrent_assignments_per_second", "/s"
    ),
    Headline("Web server memory with 1,000 sockets (RSS)", "ws", "ws_server_rss_mb", "MB"),
    Headline(
        "Memory per web process after ingest (RSS)", "scaling", "memory_web_process_rss_mb_n1", "MB"
    ),
    Headline(
        "Memory per worker process after ingest (RSS)",
        "scaling",
        "memory_celery_child_rss_mb_n1",
        "MB",
    ),
    Headline("Mail filed end to end, 1 web + 1 worker", "scaling", "filed_per_second_n1", "msg/s"),
    Headline("Speed-up with 2 web + 2 worker processes", "scaling", "speedup_n2", "×"),
    Headline("Speed-up with 4 web + 4 worker processes", "scaling", "speedup_n4", "×"),
)


@dataclass
class Outcome:
    """What one step of the run gave: its status, exit code, time and figures."""

    status: str  # ok, failed, missing, skipped
    seconds: float = 0.0
    exit_code: int | None = None
    command: list[str] = field(default_factory=list)
    log: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    note: str = ""


# --- parsing and checking --------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A figure's value: an int or float when it reads as one, else the text."""
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_lines(text: str) -> dict[str, Any]:
    """The ``name: value`` lines of a bench's stdout (other lines are ignored)."""
    figures: dict[str, Any] = {}
    for line in text.splitlines():
        match = LINE.match(line.rstrip())
        if match:
            figures[match.group(1)] = parse_value(match.group(2))
    return figures


def format_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
    return f"{int(value):,}"


def with_unit(text: str, unit: str) -> str:
    """``12.5 ms``, ``1,000``, ``11.2×``."""
    if not unit:
        return text
    return f"{text}{unit}" if unit == "×" else f"{text} {unit}"


def headline_rows(benches: Mapping[str, Outcome], scale: str) -> list[dict[str, Any]]:
    """Each headline with its value, target and status: met, missed, or no figure."""
    rows = []
    for headline in HEADLINES:
        outcome = benches.get(headline.bench)
        value = outcome.figures.get(headline.metric) if outcome else None
        target = headline.target
        if not isinstance(value, int | float) or isinstance(value, bool):
            status = "no figure" if target else ""
        elif target is None:
            status = ""
        else:
            status = "met" if target.met(value, scale) else "missed"
        rows.append(
            {
                "label": headline.label,
                "bench": headline.bench,
                "metric": headline.metric,
                "value": value,
                "unit": headline.unit,
                "target": target.describe(scale, headline.unit) if target else "",
                "status": status,
            }
        )
    return rows


def render_table(
    rows: Sequence[Mapping[str, Any]],
    benches: Mapping[str, Outcome],
    *,
    scale: str,
    facts: Mapping[str, Any],
) -> str:
    """The markdown table of the headlines (targets are the full scale's; at small scale the
    status is in brackets, a hint only) and one of every bench's status and time."""
    hint = scale != "full"
    lines = [
        f"Scale **{scale}**, {facts.get('started_at', '')}, git {facts.get('git_revision', '')}, "
        f"{facts.get('cpu_count', '?')} CPUs ({facts.get('cpu_model', '?')}), "
        f"{facts.get('memory_gb', '?')} GB, PostgreSQL {facts.get('postgresql', '?')}, "
        f"load average {facts.get('load_average_start', '?')} → "
        f"{facts.get('load_average_end', '?')}.",
        "",
        "| figure | value | target | status |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        value = row["value"]
        shown = "—" if value is None else with_unit(format_value(value), row["unit"])
        status = row["status"]
        if hint and status in ("met", "missed"):
            status = f"({status})"
        figure = f"{row['label']} (`{row['bench']}.{row['metric']}`)"
        lines.append(f"| {figure} | {shown} | {row['target'] or '—'} | {status or '—'} |")
    if hint:
        lines += ["", "Targets are for the full scale; a small run's status is only a hint."]
    lines += ["", "| bench | status | seconds |", "| --- | --- | --- |"]
    for name, outcome in benches.items():
        status = outcome.status
        if outcome.exit_code not in (None, 0):
            status += f" (exit {outcome.exit_code})"
        if outcome.note:
            status += f": {outcome.note}"
        lines.append(f"| {name} | {status} | {outcome.seconds:,.0f} |")
    return "\n".join(lines) + "\n"


# --- running ---------------------------------------------------------------------------------


def run_step(command: Sequence[str], *, log: Path, timeout: float | None) -> Outcome:
    """Run one command from the repository root: stderr to ``log``, stdout kept and parsed.
    A command that runs past ``timeout`` is stopped with its whole process group."""
    started = time.monotonic()
    with log.open("w") as err:
        err.write(f"$ {' '.join(command)}\n")
        err.flush()
        try:
            process = subprocess.Popen(
                list(command),
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,  # its servers and workers stop with it
            )
        except OSError as error:
            return Outcome("failed", exit_code=127, command=list(command), note=str(error))
        try:
            stdout, _ = process.communicate(timeout=timeout)
            note = ""
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                stdout, _ = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                stdout, _ = process.communicate()
            note = f"stopped after {timeout:.0f} s"
    log.with_suffix(".out").write_text(stdout)
    seconds = round(time.monotonic() - started, 1)
    status = "ok" if process.returncode == 0 and not note else "failed"
    return Outcome(
        status,
        seconds=seconds,
        exit_code=process.returncode,
        command=list(command),
        log=str(log.relative_to(REPO) if log.is_relative_to(REPO) else log),
        figures=parse_lines(stdout),
        note=note,
    )


def run_bench(
    bench: Bench, *, scale: str, folder: Path, timeout: float | None, python: str = sys.executable
) -> Outcome:
    """Run one bench at ``scale``. Its figures are its JSON file when it wrote one, else its
    stdout's ``name: value`` lines."""
    if bench.source and not (REPO / bench.source).exists():
        return Outcome("missing", note=f"{bench.source} is not there yet")
    database = database_name()
    arguments = [
        each.format(database=database) for each in (bench.small if scale == "small" else bench.full)
    ]
    result = folder / f"{bench.name}.json"
    if bench.writes_json:
        arguments += ["--json", str(result)]
    outcome = run_step(
        [python, *bench.command, *arguments], log=folder / f"{bench.name}.log", timeout=timeout
    )
    if bench.writes_json and result.exists():
        # The bench's own record, typed, and free of what its servers may print on stdout.
        with contextlib.suppress(ValueError):  # a half-written file: keep stdout's lines
            written = json.loads(result.read_text())
            if isinstance(written, dict) and written:
                outcome.figures = written
    return outcome


def selected(only: str, skip: str) -> list[Bench]:
    """The benches to run: ``--only`` names (all when empty), less ``--skip`` names."""
    wanted = [name for name in only.split(",") if name] or list(BENCH_NAMES)
    unwanted = {name for name in skip.split(",") if name}
    unknown = (set(wanted) | unwanted) - set(BENCH_NAMES)
    if unknown:
        raise ValueError(f"unknown bench {', '.join(sorted(unknown))}: {', '.join(BENCH_NAMES)}")
    return [bench for bench in BENCHES if bench.name in wanted and bench.name not in unwanted]


# --- the machine -----------------------------------------------------------------------------


def _first(path: str, pattern: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            match = re.match(pattern, line)
            if match:
                return match.group(1).strip()
    except OSError:
        pass
    return ""


def _command(*command: str) -> str:
    try:
        return subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def database_name() -> str:
    """The bench database's name, from ``DATABASE_URL``."""
    return os.environ.get("DATABASE_URL", "").rsplit("/", 1)[-1].split("?", 1)[0]


def postgresql_version() -> str:
    """The server's version, asked over ``DATABASE_URL`` (empty when it cannot be reached)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return ""
    try:
        import psycopg2  # the project's driver

        conn = psycopg2.connect(url, connect_timeout=10)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SHOW server_version")
                return str(cursor.fetchone()[0])
        finally:
            conn.close()
    except Exception:  # a fact for the record, never a reason to stop
        return ""


def machine_facts() -> dict[str, Any]:
    """CPU, memory, PostgreSQL and git: what a figure needs beside it to be compared."""
    kilobytes = _first("/proc/meminfo", r"MemTotal:\s+(\d+)")
    revision = _command("git", "rev-parse", "--short", "HEAD")
    if revision and _command("git", "status", "--porcelain", "--untracked-files=no"):
        revision += "-dirty"
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _first("/proc/cpuinfo", r"model name\s*:\s*(.*)") or platform.processor(),
        "memory_gb": round(int(kilobytes) / 1024**2, 1) if kilobytes else None,
        "postgresql": postgresql_version(),
        "python": platform.python_version(),
        "git_revision": revision,
        "database": database_name(),
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


# --- the run ---------------------------------------------------------------------------------


def setup_steps(scale: str, python: str) -> dict[str, list[str]]:
    """Migrate the bench database (``make bench`` created it) and generate the scale's data."""
    return {
        "migrate": [python, "manage.py", "migrate", "--noinput", "-v0"],
        "data": [python, "-m", "bench.generate", *DATA[scale], "--no-progress"],
    }


def run(options: argparse.Namespace) -> dict[str, Any]:
    """Set up, run every selected bench, and write the JSON result and the table."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"bench-{options.scale}-{stamp}"
    folder = options.results / name
    folder.mkdir(parents=True, exist_ok=True)
    facts = machine_facts() | {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_start": load_average(),
    }
    began = time.monotonic()
    setup: dict[str, Outcome] = {}
    if not options.no_setup:
        for step, command in setup_steps(options.scale, options.python).items():
            if any(outcome.status != "ok" for outcome in setup.values()):
                break
            note(f"{step}: {' '.join(command[1:])}")
            setup[step] = run_step(command, log=folder / f"{step}.log", timeout=None)
            note(f"{step}: {setup[step].status} in {setup[step].seconds:.0f} s")
    benches: dict[str, Outcome] = {}
    broken = [step for step, outcome in setup.items() if outcome.status != "ok"]
    for bench in options.benches:
        if broken:  # no database or no data: every bench would fail, slowly
            benches[bench.name] = Outcome("skipped", note=f"{', '.join(broken)} failed")
            continue
        note(f"{bench.name}: running (log {folder.name}/{bench.name}.log)")
        outcome = run_bench(
            bench,
            scale=options.scale,
            folder=folder,
            timeout=options.timeout,
            python=options.python,
        )
        benches[bench.name] = outcome
        note(f"{bench.name}: {outcome.status} in {outcome.seconds:.0f} s {outcome.note}".rstrip())
        if outcome.status == "failed":
            tail(folder / f"{bench.name}.log")
    facts["load_average_end"] = load_average()
    facts["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    rows = headline_rows(benches, options.scale)
    table = render_table(rows, benches, scale=options.scale, facts=facts)
    result = {
        "scale": options.scale,
        "seconds": round(time.monotonic() - began, 1),
        "machine": facts,
        "setup": {step: vars(outcome) for step, outcome in setup.items()},
        "benches": {bench: vars(outcome) for bench, outcome in benches.items()},
        "headlines": rows,
        "logs": str(folder),
    }
    path = options.results / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    (folder / "table.md").write_text(table)
    if options.markdown:
        options.markdown.parent.mkdir(parents=True, exist_ok=True)
        options.markdown.write_text(table)
    result["json"] = str(path)
    result["table"] = table
    return result


def note(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tail(log: Path, lines: int = 15) -> None:
    """The end of a failed bench's log on stderr, so the reason shows without opening it."""
    try:
        for line in log.read_text(errors="replace").splitlines()[-lines:]:
            print(f"    {line}", file=sys.stderr)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=SCALES, default="small", help="small or full")
    parser.add_argument("--only", default="", metavar="NAMES", help="run only these (a,b)")
    parser.add_argument("--skip", default="", metavar="NAMES", help="do not run these (a,b)")
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="stop a bench after this long (default: 900 at small scale, none at full)",
    )
    parser.add_argument("--no-setup", action="store_true", help="skip migrate and data")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="write the table here")
    parser.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    parser.add_argument("--python", default=sys.executable, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    try:
        options.benches = selected(options.only, options.skip)
    except ValueError as error:
        parser.error(str(error))
    if options.timeout is None and options.scale == "small":
        options.timeout = 900.0
    result = run(options)
    print(f"scale: {result['scale']}")
    print(f"seconds: {result['seconds']}")
    for bench, outcome in result["benches"].items():
        print(f"{bench}.status: {outcome['status']}")
        print(f"{bench}.seconds: {outcome['seconds']}")
        for metric, value in outcome["figures"].items():
            print(f"{bench}.{metric}: {value}")
    print(f"json: {result['json']}")
    print()
    print(result["table"], end="")
    failed = [name for name, outcome in result["benches"].items() if outcome["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
