"""The benchmark's own logic: its baseline selects the rows the scan reads, and a broken
budget is reported as broken. (Its figures are wall-clock times: `make bench` measures
them, the suite does not.)"""

from __future__ import annotations

import datetime as dt
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection

from clinic.management.commands import bench
from maintenance.selectors import booster_board

WEDNESDAY_AFTERNOON = dt.datetime(2026, 11, 18, 14, 0, tzinfo=ZoneInfo("America/New_York"))


@pytest.mark.slow
@pytest.mark.django_db
def test_the_single_query_selects_the_plans_the_scan_reads():
    with time_machine.travel(WEDNESDAY_AFTERNOON, tick=False):
        call_command("seed_scale", patients=60, stdout=StringIO())
        today = WEDNESDAY_AFTERNOON.date()
        with connection.cursor() as cursor:
            cursor.execute(bench.SCAN_SQL, {"today": today})
            selected = {row[0] for row in cursor.fetchall()}
        read = {row.status.plan.pk for row in booster_board(today=today).rows}
    assert read
    assert selected == read


def figures(*, patient: float = 10, portal: float = 10, api: float = 200, scan: float = 10, growth: float = 10):
    """Fabricated measures: a trivial page of 5 ms, a bare API of 400 req/s, a single
    query of 10 ms, a scan over 100 and 1,000 plans."""
    return (
        {
            100: {"scan": [scan / 1000 / growth], "single_query": [0.01 / growth], "outcomes": [0.1], "plans": 100},
            1000: {"scan": [scan / 1000], "single_query": [0.01], "outcomes": [0.2], "plans": 1000, "series": 5},
        },
        100,
        1000,
        {
            "pages": {"trivial": [0.005] * 20, "patient": [patient / 1000] * 20, "portal": [portal / 1000] * 20},
            "throughput": {"bare": 400.0, "patients": api, "phq9": api},
            "history": {"infusions": 50, "phq9": 60, "first": "2021-11-23"},
        },
    )


def test_budgets_hold_within_their_ratios():
    rows = bench.budget_rows(*figures())
    assert all(row.ok for row in rows), bench.render_table(rows)


@pytest.mark.parametrize(
    ("measure", "overrides"),
    [
        ("Staff patient page", {"patient": 16}),  # 3.2x the trivial page
        ("Portal page", {"portal": 16}),
        ("GET /api/v1/", {"api": 190}),  # both lists under half the bare endpoint
        ("Booster-reminder scan", {"scan": 21}),  # 2.1x the single query
        ("Scan growth", {"growth": 13}),  # 13x the time for 10x the plans
    ],
)
def test_a_broken_budget_is_reported_as_broken(measure, overrides):
    rows = bench.budget_rows(*figures(**overrides))
    broken = [row.measure for row in rows if not row.ok]
    assert broken
    assert all(name.startswith(measure) for name in broken), broken
    assert "| NO |" in bench.render_table(rows)
