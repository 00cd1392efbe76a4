"""``make bench``: the project's benchmark, on a large generated clinic in PostgreSQL.

Each measure runs side by side with a baseline in the same run, and the budgets are
ratios to it, so the figures mean the same on a fast or a slow machine:

- the staff page of a patient with five years of history, and that patient's portal page,
  against a trivial authenticated page of the same stack (median and p95 latency), served
  by the real server (gunicorn);
- API throughput of ``GET /api/v1/patients/`` and ``GET /api/v1/phq9/?patient=`` under
  concurrent load, against a bare DRF endpoint;
- the booster-reminder scan over the whole clinic against the one SQL statement that
  selects the same rows, and how its time grows from the small clinic to the large one;
- the clinic outcomes chart (its three aggregates and the figures) over every series.

It prints a table, writes it to docs/benchmarks.md with the date and the machine, and
exits 1 if a budget is broken. The two clinics live in their own databases
(``<BENCH_DATABASE_URL>_<patients>``), seeded once by ``seed_scale`` and reused.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# --- Budgets (issue 8) -------------------------------------------------------------------
PAGE_RATIO = 3.0  # patient page and portal page within 3x the trivial page (median and p95)
API_RATIO = 0.5  # API lists at least half the bare endpoint's throughput
SCAN_RATIO = 2.0  # the reminder scan within 2x its single query
SCAN_GROWTH_SLACK = 1.2  # scan time grows no faster than the plans it touches (20 % noise)
OUTCOMES_SECONDS = 1.0  # the outcomes chart over every series
SCAN_ROUNDS = 15  # the scan and its single query, in turns (medians)

DEFAULT_BASE_URL = "postgres://postgres@127.0.0.1:5432/clinic_bench"
SETTINGS = "clinic.bench_settings"
SCALE_PASSWORD = "scale-demo-password"


@dataclass
class Row:
    measure: str
    figure: str
    baseline: str
    ratio: str
    budget: str
    ok: bool


def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


class Command(BaseCommand):
    help = "Benchmark the clinic on generated data (see docs/benchmarks.md); exits 1 if a budget is broken."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=20_000, help="the large clinic")
        parser.add_argument("--small", type=int, default=2_000, help="the small clinic, for the scan's growth")
        parser.add_argument("--base-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_BASE_URL))
        parser.add_argument("--requests", type=int, default=150, help="requests per page for latency")
        parser.add_argument("--seconds", type=float, default=8.0, help="load per API endpoint")
        parser.add_argument("--concurrency", type=int, default=8)
        parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="gunicorn workers")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--output", default=str(Path(settings.BASE_DIR) / "docs" / "benchmarks.md"))
        parser.add_argument("--reseed", action="store_true", help="generate the clinics again")
        # Internal: run by the orchestrator in a process on one clinic's database.
        parser.add_argument("--measure-in-process", action="store_true", help="(internal)")
        parser.add_argument("--credentials", action="store_true", help="(internal)")

    # --- Orchestration ---------------------------------------------------------------

    def handle(self, *args, **options):
        if options["measure_in_process"]:
            self.stdout.write(json.dumps(measure_in_process()))
            return
        if options["credentials"]:
            self.stdout.write(json.dumps(credentials()))
            return

        started = time.monotonic()
        urls = {size: f"{options['base_url']}_{size}" for size in (options["small"], options["patients"])}
        for size, url in urls.items():
            self._prepare(url, size, reseed=options["reseed"])

        in_process = {
            size: json.loads(self._manage(url, "bench", "--measure-in-process")) for size, url in urls.items()
        }
        http_figures = self._over_http(urls[options["patients"]], options)

        rows = budget_rows(in_process, options["small"], options["patients"], http_figures)
        table = render_table(rows)
        self.stdout.write(table)
        elapsed = time.monotonic() - started
        write_report(Path(options["output"]), table, options, in_process, elapsed)
        self.stdout.write(f"Written to {options['output']} ({elapsed:.0f} s in all).")
        if not all(row.ok for row in rows):
            self.stderr.write("A budget is broken (marked NO above).")
            sys.exit(1)

    def _env(self, url: str) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": SETTINGS}

    def _manage(self, url: str, *arguments: str) -> str:
        result = subprocess.run(
            [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *arguments],
            env=self._env(url),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise CommandError(f"manage.py {' '.join(arguments)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def _prepare(self, url: str, size: int, *, reseed: bool) -> None:
        import psycopg

        parts = urlsplit(url)
        name = parts.path.lstrip("/")
        admin = parts._replace(path="/postgres").geturl()
        with psycopg.connect(admin, autocommit=True) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{name}"')
        self.stdout.write(f"{name}: migrating")
        self._manage(url, "migrate", "--noinput")
        with psycopg.connect(url) as connection:
            seeded = connection.execute("SELECT count(*) FROM patients_patient WHERE mrn LIKE 'SC-%%'").fetchone()[0]
        if seeded == size and not reseed:
            self.stdout.write(f"{name}: {size:,} patients already generated")
        else:
            self.stdout.write(f"{name}: generating {size:,} patients")
            arguments = ["seed_scale", "--patients", str(size), "--password", SCALE_PASSWORD]
            if seeded:
                arguments.append("--replace")
            self.stdout.write(self._manage(url, *arguments))
        # What autovacuum does for a clinic in production: statistics, and the visibility
        # map that lets index-only scans skip the table.
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("VACUUM (ANALYZE)")

    def _over_http(self, url: str, options) -> dict:
        keys = json.loads(self._manage(url, "bench", "--credentials"))
        port = options["port"]
        server = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "clinic.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(options["workers"]),
                "--log-level",
                "warning",
            ],
            env=self._env(url),
            cwd=settings.BASE_DIR,
        )
        try:
            wait_for(port)
            staff = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={keys['clinician_session']}"}
            portal = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={keys['patient_session']}"}
            token = {"Authorization": f"Token {keys['clinician_token']}"}
            pages = latency(
                port,
                {
                    "trivial": ("/bench/trivial/", staff),
                    "patient": (f"/patients/{keys['patient_id']}/", staff),
                    "portal": ("/portal/", portal),
                },
                options["requests"],
            )
            throughput_figures = {
                name: throughput(port, path, token, options["seconds"], options["concurrency"])
                for name, path in {
                    "bare": "/bench/bare-api/",
                    "patients": "/api/v1/patients/",
                    "phq9": f"/api/v1/phq9/?patient={keys['patient_id']}",
                }.items()
            }
            return {"pages": pages, "throughput": throughput_figures, "history": keys["history"]}
        finally:
            server.terminate()
            server.wait(timeout=30)


# --- In the clinic's own process ---------------------------------------------------------


def _timed(function, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


#: The rows the booster scan reads, in one statement: each plan in force with its
#: patient's last completed infusion and next booked booster, and the PHQ-9s since.
SCAN_SQL = """
SELECT plan.id, plan.patient_id, last.id, last.scheduled_on, next.id, scores.n
FROM maintenance_maintenanceplan plan
JOIN patients_patient patient ON patient.id = plan.patient_id AND patient.status = 'active'
JOIN LATERAL (
    SELECT s.id, s.scheduled_on, s.scheduled_at FROM infusions_infusionsession s
    WHERE s.patient_id = plan.patient_id AND s.status = 'completed'
    ORDER BY s.scheduled_on DESC, s.scheduled_at DESC LIMIT 1
) last ON TRUE
LEFT JOIN LATERAL (
    SELECT s.id FROM infusions_infusionsession s
    WHERE s.patient_id = plan.patient_id AND s.kind = 'booster' AND s.status = 'scheduled'
      AND s.scheduled_on >= %(today)s
    ORDER BY s.scheduled_at LIMIT 1
) next ON TRUE
LEFT JOIN LATERAL (
    SELECT count(*) AS n FROM patients_phq9assessment a
    WHERE a.patient_id = plan.patient_id AND a.taken_at >= last.scheduled_at
) scores ON TRUE
WHERE plan.is_active
"""


def measure_in_process() -> dict:
    from django.db import connection, transaction
    from django.utils import timezone

    from maintenance.reminders import _scan_boosters
    from maintenance.selectors import booster_board
    from sessions import charts
    from sessions import outcomes as aggregate
    from sessions.models import InductionSeries

    today = timezone.localdate()

    def scan():
        # Rolled back all the same, so every round does the same work.
        with transaction.atomic():
            _scan_boosters(today)
            transaction.set_rollback(True)

    def single_query():
        with connection.cursor() as cursor:
            cursor.execute(SCAN_SQL, {"today": today})
            return cursor.fetchall()

    def outcomes():
        filters = aggregate.OutcomeFilters()
        # What the outcomes page computes (sessions.views.outcomes).
        result = aggregate.clinic_outcomes(filters)
        figures = (charts.clinic_response_curve(result.curve), charts.time_to_first_booster(result.days_to_booster))
        for figure in figures:
            if figure is not None:
                figure.to_json()

    # The scan runs every minute: in the steady state it has written its reminders once
    # (kept, as beat would) and each later scan finds what is due and writes nothing new.
    with transaction.atomic():
        _scan_boosters(today)
    scan()  # warm the caches of both sides alike
    single_query()
    # Taken in turns, so that whatever else the machine does weighs on both sides alike.
    scan_times, query_times = [], []
    for _ in range(SCAN_ROUNDS):
        scan_times += _timed(scan, 1)
        query_times += _timed(single_query, 1)
    return {
        "plans": len(single_query()),
        "board_rows": len(booster_board(today=today).rows),
        "scan": scan_times,
        "single_query": query_times,
        "outcomes": _timed(outcomes, 3),
        "series": InductionSeries.objects.count(),
    }


def credentials() -> dict:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from knox.models import AuthToken

    from clinic import two_factor
    from clinic.middleware import SessionIdleTimeoutMiddleware, idle_minutes
    from patients.models import Patient

    def session_for(user) -> str:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        # A session a minute old: no middleware writes it during the measured requests.
        session[SessionIdleTimeoutMiddleware.MARK] = int(time.time()) + 3600
        session[two_factor.DEVICES_CHECKED_AT] = time.time() + 3600
        session.set_expiry(idle_minutes(user) * 60 + 3600)
        session.create()
        return session.session_key

    users = get_user_model().objects
    clinician = users.get(username="scale_clinician")
    patient = Patient.objects.get(user__username="scale_patient")
    return {
        "clinician_session": session_for(clinician),
        "patient_session": session_for(patient.user),
        "clinician_token": AuthToken.objects.create(user=clinician)[1],
        "patient_id": str(patient.pk),
        "history": {
            "infusions": patient.infusion_sessions.count(),
            "phq9": patient.phq9_assessments.count(),
            "first": str(patient.infusion_sessions.order_by("scheduled_at").values_list("scheduled_on", flat=True)[0]),
        },
    }


# --- Over HTTP ----------------------------------------------------------------------------


def wait_for(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health/")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.3)
    raise CommandError(f"gunicorn did not answer on port {port}")


def _get(connection: http.client.HTTPConnection, path: str, headers: dict) -> None:
    connection.request("GET", path, headers={"Host": "127.0.0.1", **headers})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise CommandError(f"GET {path} answered {response.status}")


def latency(port: int, targets: dict[str, tuple[str, dict]], rounds: int) -> dict[str, list[float]]:
    """Sequential requests, the targets interleaved in a shuffled order each round so that
    any drift of the machine weighs on every target alike."""
    connections = {name: http.client.HTTPConnection("127.0.0.1", port, timeout=30) for name in targets}
    times: dict[str, list[float]] = {name: [] for name in targets}
    order = list(targets)
    for name in order:  # warm up
        _get(connections[name], *targets[name])
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            started = time.perf_counter()
            _get(connections[name], *targets[name])
            times[name].append(time.perf_counter() - started)
    return times


def throughput(port: int, path: str, headers: dict, seconds: float, concurrency: int) -> float:
    """Requests a second answered 200, ``concurrency`` clients each on its own connection."""
    done = [0] * concurrency
    _get(http.client.HTTPConnection("127.0.0.1", port, timeout=30), path, headers)  # warm up
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            _get(connection, path, headers)
            done[index] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(index,)) for index in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - started)


# --- The table ----------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def budget_rows(in_process: dict, small: int, large: int, over_http: dict) -> list[Row]:
    rows = []
    pages = over_http["pages"]
    trivial = pages["trivial"]
    history = over_http["history"]
    for name, label in (
        (
            "patient",
            f"Staff patient page ({history['infusions']} infusions, {history['phq9']} PHQ-9s since {history['first']})",
        ),
        ("portal", "Portal page (the same patient)"),
    ):
        for stat, function in (("median", median), ("p95", p95)):
            figure, base = function(pages[name]), function(trivial)
            ratio = figure / base
            rows.append(
                Row(
                    f"{label}, {stat}",
                    _ms(figure),
                    f"trivial page {_ms(base)}",
                    f"{ratio:.2f}x",
                    f"<= {PAGE_RATIO:g}x",
                    ratio <= PAGE_RATIO,
                )
            )
    speeds = over_http["throughput"]
    for name, label in (
        ("patients", "GET /api/v1/patients/"),
        ("phq9", "GET /api/v1/phq9/?patient= (the five-year patient)"),
    ):
        ratio = speeds[name] / speeds["bare"]
        rows.append(
            Row(
                label,
                f"{speeds[name]:.0f} req/s",
                f"bare DRF {speeds['bare']:.0f} req/s",
                f"{ratio:.2f}x",
                f">= {API_RATIO:g}x",
                ratio >= API_RATIO,
            )
        )
    for size in (small, large):
        figures = in_process[size]
        scan, query = median(figures["scan"]), median(figures["single_query"])
        ratio = scan / query
        rows.append(
            Row(
                f"Booster-reminder scan, {size:,} patients ({figures['plans']:,} plans)",
                _ms(scan),
                f"single query {_ms(query)}",
                f"{ratio:.2f}x",
                f"<= {SCAN_RATIO:g}x",
                ratio <= SCAN_RATIO,
            )
        )
    growth = median(in_process[large]["scan"]) / median(in_process[small]["scan"])
    touched = in_process[large]["plans"] / max(1, in_process[small]["plans"])
    rows.append(
        Row(
            f"Scan growth {small:,} -> {large:,} patients",
            f"{growth:.1f}x time",
            f"{touched:.1f}x plans touched",
            f"{growth / touched:.2f}",
            f"<= {SCAN_GROWTH_SLACK:g}",
            growth <= touched * SCAN_GROWTH_SLACK,
        )
    )
    outcomes = median(in_process[large]["outcomes"])
    rows.append(
        Row(
            f"Outcomes chart over every series ({in_process[large]['series']:,})",
            _ms(outcomes),
            "",
            "",
            f"< {OUTCOMES_SECONDS * 1000:.0f} ms",
            outcomes < OUTCOMES_SECONDS,
        )
    )
    return rows


def render_table(rows: list[Row]) -> str:
    header = "| measure | figure | baseline (same run) | ratio | budget | holds |\n|---|---|---|---|---|---|\n"
    return header + "".join(
        f"| {r.measure} | {r.figure} | {r.baseline} | {r.ratio} | {r.budget} | {'yes' if r.ok else 'NO'} |\n"
        for r in rows
    )


def write_report(path: Path, table: str, options, in_process: dict, elapsed: float) -> None:
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            postgres = cursor.fetchone()[0]
    except Exception:
        postgres = "unknown"
    machine = (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, PostgreSQL {postgres}"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""# Benchmarks

The latest run of `make bench`: the project's own benchmark, on generated clinics in
PostgreSQL (`clinic/management/commands/bench.py`).

- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC
- Machine: {machine}
- Clinics: {options["small"]:,} and {options["patients"]:,} generated patients (`manage.py seed_scale`)
- Server: gunicorn, {options["workers"]} workers, on the large clinic; {options["requests"]} requests per page
  (interleaved), {options["concurrency"]} concurrent clients for {options["seconds"]:g} s per API endpoint
- Took {elapsed:.0f} s

{table}
Each figure is measured next to its baseline in the same run: the budgets are ratios, so
they hold or break the same on a faster machine. The scan is `maintenance.reminders`'
booster scan (rolled back after each of 15 rounds, taken in turns with the single query);
the single query is `SCAN_SQL` in `clinic/management/commands/bench.py`. The outcomes chart
is `sessions.outcomes.clinic_outcomes` (the page's three aggregates in one statement) and
its two figures (median of 3).
"""
    )
