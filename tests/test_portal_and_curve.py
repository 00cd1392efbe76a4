"""The response curve (edge cases) and the patient portal: own data only, once a day, crisis help."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from types import SimpleNamespace

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from maintenance.models import Notification, NotificationKind
from patients.charts import response_curve, response_curve_summary, response_curve_table
from patients.models import PHQ9Assessment, PHQ9Source
from patients.phq9 import ITEM_FIELDS
from sessions.selectors import CurveInfusion, CurvePoint, ResponseCurveData, response_curve_data
from sessions.services import series_create, session_complete, session_start
from tests.factories import PHQ9Factory

START = dt.datetime(2021, 1, 4, 9, 0, tzinfo=dt.UTC)


def point(days: int, total: int, item_9: int = 0, infusion: str = "") -> CurvePoint:
    return CurvePoint(START + dt.timedelta(days=days), total, "Mild", item_9, infusion)


# --- The chart function on edge cases --------------------------------------------------------


def test_no_scores_draws_no_curve_and_says_so():
    data = ResponseCurveData(points=[], infusions=[], baseline=None)
    assert response_curve(data) is None
    assert response_curve_summary(data) == "No PHQ-9 questionnaire yet: the curve starts once there are two."


def test_one_score_draws_no_curve_and_says_what_it_was():
    data = ResponseCurveData(points=[point(0, 18)], infusions=[], baseline=None)
    assert response_curve(data) is None
    assert "Only one PHQ-9 so far (18" in response_curve_summary(data)


def test_a_series_in_progress_draws_scores_and_the_infusions_given_so_far():
    infusions = [
        CurveInfusion(START + dt.timedelta(days=d), f"Induction infusion {n} of 6", False) for n, d in ((1, 1), (2, 4))
    ]
    data = ResponseCurveData(
        points=[point(0, 20), point(1, 18, infusion="Induction infusion 1 of 6")], infusions=infusions, baseline=None
    )
    figure = response_curve(data)
    names = [trace.name for trace in figure.data]
    assert names == ["PHQ-9 total", "Induction infusion"]
    assert list(figure.data[0].y) == [20, 18]
    assert len(figure.data[1].x) == 2


def test_years_of_boosters_are_all_marked_with_the_baseline_response_and_remission_lines():
    points = [point(0, 22)] + [point(7 * n, max(3, 22 - n)) for n in range(1, 260)]  # five years, weekly
    boosters = [CurveInfusion(START + dt.timedelta(days=35 * n), "Booster infusion", True) for n in range(1, 52)]
    inductions = [
        CurveInfusion(START + dt.timedelta(days=d), "Induction infusion", False) for d in (1, 4, 8, 11, 15, 18)
    ]
    baseline = SimpleNamespace(total=22)  # the chart reads only the baseline's total
    figure = response_curve(ResponseCurveData(points=points, infusions=inductions + boosters, baseline=baseline))
    by_name = {trace.name: trace for trace in figure.data}
    assert len(by_name["PHQ-9 total"].x) == 260
    assert len(by_name["Booster"].x) == 51
    assert len(by_name["Induction infusion"].x) == 6
    labels = [a["text"] for a in figure.layout.annotations]
    assert {"Remission (below 5)", "Baseline 22", "50 % response"} <= set(labels)


@pytest.mark.django_db
def test_the_curve_marks_the_baseline_the_50_percent_line_and_item_9(patient, protocol, scheduler, clinician):
    with time_machine.travel(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC), tick=False) as clock:
        PHQ9Factory(patient=patient, level=2, item_9=1, taken_at=timezone.now())  # 17: the baseline
        series = series_create(patient=patient, protocol=protocol, start_date=dt.date(2026, 3, 2), created_by=scheduler)
        first = series.sessions.order_by("scheduled_at").first()
        clock.move_to(first.scheduled_at + dt.timedelta(hours=2))
        PHQ9Factory(patient=patient, level=1, taken_at=first.scheduled_at - dt.timedelta(minutes=30))
        session = session_start(session=first, by=clinician, weight_kg="70", started_at=first.scheduled_at)
        session_complete(session=session, by=clinician, ended_at=first.scheduled_at + dt.timedelta(minutes=40))
        data = response_curve_data(patient)
    figure = response_curve(data)
    labels = [a["text"] for a in figure.layout.annotations]
    assert "Baseline 8" in labels  # the latest before the first infusion
    assert "50 % response" in labels
    assert [t.name for t in figure.data] == ["PHQ-9 total", "Item 9 above 0", "Induction infusion"]
    assert data.points[1].infusion == "Induction infusion 1 of 6"  # hover names the related infusion
    headers, rows = response_curve_table(data)
    assert headers[0] == "Date"
    assert rows[0][4] == "Induction infusion 1 of 6"


# --- The staff patient page ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_patient_page_draws_the_curve_from_json_without_inline_scripts(client, clinician, patient):
    PHQ9Factory(patient=patient, level=2, taken_at=timezone.now() - dt.timedelta(days=10))
    PHQ9Factory(patient=patient, level=1)
    client.force_login(clinician)
    page = client.get(patient.get_absolute_url()).text
    figure = json.loads(
        re.search(r'<script id="response-curve" type="application/json">(.*?)</script>', page, re.S).group(1)
    )
    assert figure["data"][0]["y"] == [16, 8]
    assert "/static/vendor/plotly.min.js" in page
    assert not re.search(r"<script(?![^>]*(src=|type=\"application/json\"))", page)
    assert "Show the data as a table" in page


@pytest.mark.django_db
def test_staff_download_a_patients_scores(client, scheduler, patient, other_patient):
    PHQ9Factory(patient=patient, level=1)
    PHQ9Factory(patient=other_patient, level=3)
    client.force_login(scheduler)
    response = client.get(patient.get_absolute_url(), {"download": "response_curve"})
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().strip().splitlines()
    assert lines[0] == "Date,PHQ-9 total,Band,Infusion that day"  # a scheduler: no item 9
    assert len(lines) == 2
    assert ",8,Mild," in lines[1]


# --- The portal ---------------------------------------------------------------------------------------


def portal_answers(**changes) -> dict:
    return dict.fromkeys(ITEM_FIELDS, "1") | {"item_9": "0", "difficulty": "somewhat"} | changes


@pytest.mark.django_db
def test_the_portal_shows_the_patients_own_curve(client, patient, other_patient):
    PHQ9Factory(patient=patient, level=2, taken_at=timezone.now() - dt.timedelta(days=7))
    PHQ9Factory(patient=patient, level=1)
    PHQ9Factory(patient=other_patient, level=3)
    client.force_login(patient.user)
    page = client.get(reverse("portal:home")).text
    assert "Your PHQ-9 scores over time" in page
    figure = json.loads(
        re.search(r'<script id="response-curve" type="application/json">(.*?)</script>', page, re.S).group(1)
    )
    assert figure["data"][0]["y"] == [16, 8]


@pytest.mark.django_db
def test_the_portal_says_plainly_when_there_is_too_little_data(client, patient):
    client.force_login(patient.user)
    page = client.get(reverse("portal:home")).text
    assert "No PHQ-9 questionnaire yet" in page
    assert 'data-chart="response-curve"' not in page


@pytest.mark.django_db
def test_a_patient_fills_in_the_phq9_once_a_day(client, patient):
    client.force_login(patient.user)
    with time_machine.travel(dt.datetime(2026, 3, 2, 15, tzinfo=dt.UTC), tick=False) as clock:
        response = client.post(reverse("portal:phq9"), portal_answers())
        assert response.url == reverse("portal:home")
        saved = PHQ9Assessment.objects.get()
        assert (saved.source, saved.entered_by, saved.total) == (PHQ9Source.PORTAL, patient.user, 8)

        again = client.post(reverse("portal:phq9"), portal_answers(item_1="3"))
        assert "You can fill it in again from Tuesday 3 March" in again.text
        assert PHQ9Assessment.objects.count() == 1

        clock.move_to(dt.datetime(2026, 3, 3, 15, tzinfo=dt.UTC))
        client.post(reverse("portal:phq9"), portal_answers())
        assert PHQ9Assessment.objects.count() == 2


@pytest.mark.django_db
def test_the_once_a_day_limit_is_a_setting(client, patient, settings):
    settings.CLINIC_PORTAL_PHQ9_MIN_DAYS = 7
    client.force_login(patient.user)
    client.post(reverse("portal:phq9"), portal_answers())
    with time_machine.travel(timezone.now() + dt.timedelta(days=3)):
        assert "You can fill it in again" in client.get(reverse("portal:phq9")).text


@pytest.mark.django_db
def test_an_incomplete_portal_questionnaire_is_refused_and_keeps_the_answers(client, patient):
    client.force_login(patient.user)
    data = portal_answers()
    del data["item_7"]
    response = client.post(reverse("portal:phq9"), data)
    assert response.status_code == 400
    assert "Please answer every question" in response.text
    assert not PHQ9Assessment.objects.exists()


@pytest.mark.django_db
def test_item_9_in_the_portal_shows_crisis_resources_and_alerts_the_clinicians(client, patient, clinician):
    client.force_login(patient.user)
    response = client.post(reverse("portal:phq9"), portal_answers(item_9="2"), follow=True)
    assert response.status_code == 200
    assert "Call or text 988" in response.text
    assert "call 911" in response.text
    alert = Notification.objects.get(kind=NotificationKind.SAFETY_ALERT, recipient=clinician)
    assert "in the portal" in alert.body


@pytest.mark.django_db
def test_the_crisis_resources_are_on_the_form_before_it_is_sent(client, patient):
    client.force_login(patient.user)
    page = client.get(reverse("portal:phq9")).text
    assert re.search(r"data-phq9-safety hidden[^>]*>\s*<h2>You are not alone</h2>", page)


@pytest.mark.django_db
def test_a_patient_downloads_only_their_own_scores(client, patient, other_patient):
    PHQ9Factory(patient=patient, level=1)
    PHQ9Factory(patient=other_patient, level=3)
    client.force_login(patient.user)
    body = client.get(reverse("portal:download")).content.decode()
    assert ",8,Mild," in body
    assert ",24," not in body


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["portal:home", "portal:phq9", "portal:download"])
@pytest.mark.parametrize("role", ["clinician", "scheduler"])
def test_staff_have_no_portal_pages(client, request, name, role):
    client.force_login(request.getfixturevalue(role))
    assert client.get(reverse(name)).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        lambda p: p.get_absolute_url(),
        lambda p: p.get_absolute_url() + "?download=response_curve",
        lambda p: reverse("patients:phq9_new", kwargs={"pk": p.pk}),
        lambda p: reverse("infusions:series_new", kwargs={"pk": p.pk}),
        lambda p: reverse("maintenance:plan_edit", kwargs={"pk": p.pk}),
    ],
)
def test_a_patient_reaching_for_another_patients_data_is_refused_and_logged(
    client, patient, other_patient, caplog, url
):
    client.force_login(patient.user)
    with caplog.at_level(logging.WARNING, logger="clinic.access"):
        response = client.get(url(other_patient))
    assert response.status_code == 403
    assert str(other_patient.pk) not in response.text
    (record,) = [r for r in caplog.records if r.name == "clinic.access"]
    assert f"user={patient.user.pk}" in record.getMessage()
    assert str(other_patient.pk) in record.getMessage()  # the opaque id of what was asked for
    assert other_patient.last_name not in record.getMessage()


# --- Found in review ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_item_9_is_recorded_and_alerted_even_past_the_daily_limit(client, patient, clinician):
    client.force_login(patient.user)
    client.post(reverse("portal:phq9"), portal_answers())
    response = client.post(reverse("portal:phq9"), portal_answers(item_9="3"))
    assert response.url == reverse("portal:crisis") + "?sent=1"
    assert PHQ9Assessment.objects.filter(item_9=3).exists()
    assert Notification.objects.filter(kind=NotificationKind.SAFETY_ALERT, recipient=clinician).exists()
    page = client.get(response.url).text
    assert "Thank you for telling us" in page
    assert "Call or text 988" in page


@pytest.mark.django_db
def test_the_already_filled_in_page_still_shows_where_to_get_help(client, patient):
    client.force_login(patient.user)
    client.post(reverse("portal:phq9"), portal_answers())
    page = client.get(reverse("portal:phq9")).text
    assert "call or text 988" in page
    assert "Help is available now" in client.get(reverse("portal:crisis")).text


@pytest.mark.django_db
def test_a_scheduler_sees_no_item_9_answers_in_the_curve_or_its_csv(client, scheduler, patient):
    PHQ9Factory(patient=patient, level=2, item_9=2, taken_at=timezone.now() - dt.timedelta(days=3))
    PHQ9Factory(patient=patient, level=1)
    client.force_login(scheduler)
    page = client.get(patient.get_absolute_url()).text
    assert "Item 9 above 0" not in page
    assert "Item 9 was answered" not in page
    csv = client.get(patient.get_absolute_url(), {"download": "response_curve"}).content.decode()
    assert csv.splitlines()[0] == "Date,PHQ-9 total,Band,Infusion that day"
