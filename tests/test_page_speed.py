"""The patient page and the portal within their budget (issue 8, ``make bench``): what was made
faster must show the same, and must stay fast.

- The patient's history is read once, in one statement (sessions.selectors.PatientHistory),
  the patient page's patient row with it; the booster status comes from them without a
  query of its own.
- The response curve's figure JSON and table rows, and the timeline's entries, are put
  together in Python (clinic.charts.Chart.figure_script / rows_html, patients.views._timeline_items):
  the HTML is the one the templates wrote (includes/chart.html's former loop and json_script,
  and the timeline's former loop).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from types import SimpleNamespace

import pytest
import time_machine
from django.db import connection
from django.template import engines
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from maintenance.selectors import booster_status, booster_status_from_history
from patients.charts import response_curve_chart
from patients.views import _timeline_items
from sessions.models import SessionStatus
from sessions.scheduling import clinic_datetime
from sessions.selectors import CurveInfusion, CurvePoint, PatientHistory, ResponseCurveData, TimelineEntry
from tests.factories import MaintenancePlanFactory
from tests.test_pages_maintenance import given_induction, given_session, phq9

TODAY = dt.date(2026, 6, 15)  # a Monday
NOW = clinic_datetime(TODAY, dt.time(9))


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def collapsed(html: str) -> str:
    return re.sub(r"\s+", " ", html).strip()


# --- The response curve: the same HTML as the shared chart include -------------------------------


def curve_data(points: int) -> ResponseCurveData:
    start = clinic_datetime(dt.date(2025, 12, 30), dt.time(9, 5))
    return ResponseCurveData(
        points=[
            CurvePoint(
                taken_at=start + dt.timedelta(days=9 * n),
                total=(21 - n) % 28,
                band='Moderately <severe> & "worse"' if n % 3 else "Mild",
                item_9=n % 2,
                infusion="Induction infusion 1 of 6 <b>" if n == 1 else "",
            )
            for n in range(points)
        ],
        infusions=[CurveInfusion(start + dt.timedelta(days=9), "Induction infusion 1 of 6 <b>", False)],
        baseline=SimpleNamespace(total=21),  # the chart reads only the baseline's total
    )


#: The chart include's figure and table as templates/includes/chart.html rendered them before.
FORMER_CHART = engines["django"].from_string(
    """{% if chart.figure %}{{ chart.figure_json|json_script:chart.id }}{% endif %}"""
    """<tbody>{% for row in chart.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>"""
    """{% endfor %}</tbody>"""
)
NOW_CHART = engines["django"].from_string(
    """{% if chart.figure %}{{ chart.figure_script }}{% endif %}<tbody>{{ chart.rows_html }}</tbody>"""
)


@pytest.mark.parametrize("points", [0, 1, 2, 40])
@pytest.mark.parametrize("clinical", [True, False])
def test_the_response_curve_is_the_html_of_the_shared_chart_include(points, clinical):
    chart = response_curve_chart(curve_data(points), csv_url="?download=response_curve", clinical=clinical)
    mine = render_to_string("includes/chart.html", {"chart": chart})
    assert NOW_CHART.render({"chart": chart}) == FORMER_CHART.render({"chart": chart})
    if points >= 2:
        assert "\\u003Cb\\u003E" in mine  # the figure's JSON escaped as json_script escapes it
        assert "<td>Moderately &lt;severe&gt; &amp; &quot;worse&quot;</td>" in mine


# --- The timeline: the same HTML as the template's former loop ----------------------------------

#: The timeline's entries as templates/patients/detail.html rendered them before.
FORMER_LOOP = engines["django"].from_string(
    """{% for entry in timeline %}
    <li>
      <time datetime="{{ entry.when|date:'c' }}">{{ entry.when|date:"j M Y" }}</time>
      <div>
        {% if show_clinical and entry.kind == "infusion" or show_clinical and entry.kind == "booster" %}
        <a href="{% url 'infusions:detail' entry.record.pk %}">{{ entry.title }}</a>
        {% else %}{{ entry.title }}{% endif %}
        {% if entry.badge %}<span class="badge badge--{{ entry.badge }}">{{ entry.badge_label }}</span>{% endif %}
        {% if entry.detail %}<span class="muted small">· {{ entry.detail }}</span>{% endif %}
      </div>
    </li>
    {% endfor %}"""
)


def timeline_entries() -> list[TimelineEntry]:
    record = SimpleNamespace(pk=uuid.uuid4())
    moments = [
        dt.datetime(2026, 3, 8, 6, 59, tzinfo=dt.UTC),  # the night clocks go forward in New York
        dt.datetime(2026, 1, 1, 3, 0, tzinfo=dt.UTC),  # still 31 December in the clinic
        dt.datetime(2025, 11, 2, 5, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 9, 9, 14, 5, 7, 123456, tzinfo=dt.UTC),
    ]
    flagged = "Entered by clinic staff · item 9 answered above 0"
    stopped = 'IV <x> · discontinued: "dizzy" & <b>'
    return [
        TimelineEntry(moments[0], "infusion", "Induction 2 of 6", "Intravenous (IV)", "completed", "Completed", record),
        TimelineEntry(moments[1], "booster", "Booster infusion", "Intranasal", "scheduled", "Scheduled", record),
        TimelineEntry(moments[2], "phq9", "PHQ-9: 19", flagged, "moderately_severe", "Moderately severe", record),
        TimelineEntry(moments[3], "series", "Induction series started", stopped, record=record),
    ]


@pytest.mark.parametrize("clinical", [True, False])
def test_the_timeline_entries_are_the_html_the_template_wrote(clinical):
    entries = timeline_entries()
    former = FORMER_LOOP.render({"timeline": entries, "show_clinical": clinical})
    assert collapsed(str(_timeline_items(entries, clinical=clinical))) == collapsed(former)
    assert ("/infusions/" in former) is clinical


def test_the_timeline_entries_are_in_the_clinics_time_zone_and_language():
    html = str(_timeline_items(timeline_entries(), clinical=True))
    assert '<time datetime="2025-12-31T22:00:00-05:00">31 Dec 2025</time>' in html
    with timezone.override("Asia/Tokyo"):
        assert '<time datetime="2026-01-01T12:00:00+09:00">1 Jan 2026</time>' in str(
            _timeline_items(timeline_entries(), clinical=True)
        )


# --- The history read once, the booster status without a query ----------------------------------


@pytest.fixture
def five_years(patient, protocol, clinician):
    """A patient with an induction, boosters, a booked booster, a plan and PHQ-9s throughout."""
    given_induction(patient, protocol, dt.date(2025, 1, 10), by=clinician, planned=6)
    for month in range(1, 17):
        given_session(patient, dt.date(2025, 1, 10) + dt.timedelta(days=28 * month), by=clinician)
    for week in range(0, 75, 3):
        phq9(patient, dt.date(2025, 1, 6) + dt.timedelta(weeks=week), level=2 if week % 4 else 1)
    given_session(patient, TODAY + dt.timedelta(days=3), by=clinician, status=SessionStatus.SCHEDULED)
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    return patient


HISTORY_TABLES = ("patients_phq9assessment", "infusions_infusionsession", "infusions_inductionseries")


def reads_of(queries, *tables: str) -> list[str]:
    return [query["sql"] for query in queries if any(f'"{table}"' in query["sql"] for table in tables)]


def test_the_patient_page_reads_the_patient_and_their_history_in_one_statement(client, clinician, five_years):
    client.force_login(clinician)
    client.get(five_years.get_absolute_url())  # the session's first request writes it
    with CaptureQueriesContext(connection) as queries:
        page = client.get(five_years.get_absolute_url())
    assert page.status_code == 200
    # One statement: the patient (clinician, login and plan joined), PHQ-9s, infusions, series.
    (statement,) = reads_of(queries, *HISTORY_TABLES, "maintenance_maintenanceplan")
    assert '"patients_patient"' in statement
    assert page.context["patient"] == five_years
    assert page.context["booster"] == booster_status(patient=five_years)
    assert page.context["booster"] is not None
    assert page.context["booster"].next_appointment is not None


def test_the_portal_reads_the_history_in_one_statement(client, five_years):
    client.force_login(five_years.user)
    client.get(reverse("portal:home"))
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("portal:home"))
    assert page.status_code == 200
    assert page.context["patient"] == five_years
    # The history, and the latest portal questionnaire (patients.services.portal_phq9_next_day).
    history, latest = reads_of(queries, *HISTORY_TABLES)
    assert '"infusions_infusionsession"' in history
    assert '"infusions_infusionsession"' not in latest


def test_the_patient_page_of_no_patient_is_not_found(client, clinician):
    client.force_login(clinician)
    assert client.get(reverse("patients:detail", args=[uuid.uuid4()])).status_code == 404


def test_the_booster_status_comes_from_the_history_without_a_query(five_years, django_assert_num_queries):
    history = PatientHistory.load(five_years)
    plan = five_years.maintenance_plan
    with django_assert_num_queries(0):
        status = booster_status_from_history(plan=plan, history=history)
        assert status.last_infusion.scheduled_on
        assert status.next_appointment.scheduled_at
        history.summary(), history.curve(clinical=True), history.timeline(clinical=True), history.upcoming()
    assert status == booster_status(patient=five_years)
    assert booster_status_from_history(plan=None, history=history) is None


def test_the_history_does_not_grow_in_queries_with_years_of_it(five_years, clinician, django_assert_num_queries):
    with django_assert_num_queries(1):
        small = PatientHistory.load(five_years)
    for month in range(1, 17):  # a booster and a PHQ-9 between each two of them
        given_session(five_years, dt.date(2025, 1, 24) + dt.timedelta(days=28 * month), by=clinician)
        phq9(five_years, dt.date(2025, 1, 24) + dt.timedelta(days=28 * month), level=1)
    with django_assert_num_queries(1):
        large = PatientHistory.load(five_years)
    assert len(large.sessions) > len(small.sessions)
    assert len(large.phq9s) > len(small.phq9s)
