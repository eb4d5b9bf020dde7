"""bench/peer.py's list phase on the project side: the phases it runs, the ratios it prints, and
the project's list timed as the supervisor and an agent see it."""

from __future__ import annotations

import argparse

import pytest

from bench.generate import Options, generate
from bench.peer import list_ratios, parse_phases, project_list

TICKETS = 40


def test_phases_run_in_their_fixed_order_whatever_the_order_asked() -> None:
    assert parse_phases("list") == ("list",)
    assert parse_phases("list,ingest") == ("ingest", "list")
    assert parse_phases(" ingest , list ") == ("ingest", "list")


@pytest.mark.parametrize("text", ["", "lists", "ingest,search", ","])
def test_an_unknown_or_empty_phase_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_phases(text)


def test_the_ratios_say_how_many_times_faster_the_project_is() -> None:
    figures = {
        "project_list_p50_ms": 10.0,
        "project_list_p95_ms": 20.0,
        "peer_list_p50_ms": 45.0,
        "peer_list_p95_ms": 70.0,
        "project_search_p50_ms": 30.0,
        "project_search_p95_ms": 40.0,
        "peer_search_p50_ms": 300.0,
        "peer_search_p95_ms": 500.0,
        "project_list_tickets": 1_000,
        "peer_list_tickets": 950,
    }
    assert list_ratios(figures) == {
        "ratio_list_p50": 4.5,
        "ratio_list_p95": 3.5,
        "ratio_search_p50": 10.0,
        "ratio_search_p95": 12.5,
        "list_size_gap": 0.05,
    }


def test_a_side_without_figures_gets_no_ratio() -> None:
    assert list_ratios({"peer_list_p95_ms": 70.0, "project_list_tickets": 5}) == {}


@pytest.mark.django_db
def test_the_project_list_is_timed_for_the_supervisor_the_agent_and_a_search() -> None:
    generate(
        Options(
            tickets=TICKETS,
            tenant="bench-peer-list",
            workers=1,
            batch=TICKETS,
            analyze=False,
            progress=False,
        )
    )
    figures = project_list(tenant_slug="bench-peer-list", runs=2, search="破损")
    assert figures["tickets"] == TICKETS
    assert 0 < figures["open_tickets"] < TICKETS
    for page in ("list", "list_agent", "list_counts", "search"):
        assert figures[f"{page}_queries"] > 0
        assert 0 < figures[f"{page}_p50_ms"] <= figures[f"{page}_p95_ms"]


@pytest.mark.django_db
def test_a_missing_merchant_stops_the_list_with_its_name() -> None:
    with pytest.raises(SystemExit, match="no-such-merchant"):
        project_list(tenant_slug="no-such-merchant", runs=1, search="x")
