"""Scheduler pages: the booster board, booking a booster, the maintenance plan and the inbox."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from maintenance.models import BoosterAppointment, BoosterStage, MaintenancePlan, Notification, NotificationKind
from maintenance.selectors import booster_board, booster_status, suggest_booster_day
from patients.models import PatientStatus
from sessions.models import ClosedDay, Drug, InductionSeries, InfusionSession, Route, SessionKind, SessionStatus
from sessions.scheduling import clinic_datetime
from tests.factories import MaintenancePlanFactory, PatientFactory, PHQ9Factory, ProtocolFactory, UserFactory

TODAY = dt.date(2026, 6, 15)  # a Monday
NOW = clinic_datetime(TODAY, dt.time(9))
EVIL = "https://evil.example/steal"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def given_series(patient, protocol, start: dt.date, *, planned: int = 3, **fields) -> InductionSeries:
    return InductionSeries.objects.create(
        patient=patient, protocol=protocol, planned_infusions=planned, infusions_per_week=2, start_date=start, **fields
    )


def given_session(patient, day: dt.date, *, by, series=None, status=SessionStatus.COMPLETED, at=dt.time(10)):
    """An infusion row as the services leave it (completed ones with their record)."""
    scheduled_at = clinic_datetime(day, at)
    fields = {}
    if status == SessionStatus.COMPLETED:
        fields = {
            "started_at": scheduled_at,
            "ended_at": scheduled_at + dt.timedelta(minutes=40),
            "administered_by": by,
        }
    return InfusionSession.objects.create(
        patient=patient,
        series=series,
        kind=SessionKind.INDUCTION if series else SessionKind.BOOSTER,
        scheduled_at=scheduled_at,
        status=status,
        route=Route.IV,
        drug=Drug.KETAMINE,
        dose_mg=Decimal("36.0"),
        **fields,
    )


def given_induction(patient, protocol, last_day: dt.date, *, by, planned: int = 3, completed: int | None = None):
    """An induction series of ``planned`` infusions, every third or fourth day up to ``last_day``."""
    completed = planned if completed is None else completed
    day_list = [last_day - days(7 * (planned - 1 - i) // 2) for i in range(planned)]
    series = given_series(patient, protocol, day_list[0], planned=planned)
    for index, day in enumerate(day_list):
        status = SessionStatus.COMPLETED if index < completed else SessionStatus.SCHEDULED
        given_session(patient, day, by=by, series=series, status=status)
    return series


def phq9(patient, day: dt.date, level: int, at=dt.time(9), **items):
    return PHQ9Factory(patient=patient, level=level, taken_at=clinic_datetime(day, at), **items)


@pytest.fixture
def overdue_patient(patient, protocol, clinician):
    """Patient A (Avery): induction ended 2 April, plan 28 (14-42) days: overdue since 14 May."""
    patient.last_name = "Avery"
    patient.save(update_fields=["last_name"])
    given_induction(patient, protocol, dt.date(2026, 4, 2), by=clinician)
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    return patient


# --- Who may open what -----------------------------------------------------------------

PAGES = [
    ("maintenance:board", False, "get"),
    ("maintenance:booster_new", True, "get"),
    ("maintenance:plan_edit", True, "get"),
    ("maintenance:inbox", False, "get"),
    ("maintenance:read_all", False, "post"),
]
ROLES = [("anonymous", 302), ("patient", 403), ("scheduler", 200), ("clinician", 200), ("superuser", 200)]


def log_in(client, role, request):
    if role == "anonymous":
        return None
    user = request.getfixturevalue("patient").user if role == "patient" else request.getfixturevalue(role)
    client.force_login(user)
    return user


@pytest.mark.parametrize(("name", "needs_patient", "method"), PAGES)
@pytest.mark.parametrize(("role", "expected"), ROLES)
def test_it_lets_staff_in_and_keeps_others_out(client, request, patient, name, needs_patient, method, role, expected):
    log_in(client, role, request)
    url = reverse(name, kwargs={"pk": patient.pk} if needs_patient else None)
    response = getattr(client, method)(url)
    if role == "anonymous":
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))
    elif method == "post" and expected == 200:
        assert response.status_code == 302  # a POST answers with a redirect
    else:
        assert response.status_code == expected


@pytest.mark.parametrize(("role", "expected"), ROLES)
def test_it_guards_marking_a_notification_read(client, request, role, expected):
    user = log_in(client, role, request)
    owner = user if expected == 200 else UserFactory(role="clinician")
    notification = Notification.objects.create(recipient=owner, kind=NotificationKind.BOOSTER_STAGE, title="Hello")
    response = client.post(reverse("maintenance:notification_read", kwargs={"pk": notification.pk}))
    if role == "anonymous":
        assert response.url.startswith(reverse("login"))
    else:
        assert response.status_code == (302 if expected == 200 else expected)
    notification.refresh_from_db()
    assert (notification.read_at is not None) is (expected == 200)


def test_it_refuses_a_get_on_the_post_only_pages(client, scheduler):
    client.force_login(scheduler)
    notification = Notification.objects.create(recipient=scheduler, kind=NotificationKind.BOOSTER_STAGE, title="Hi")
    assert client.get(reverse("maintenance:read_all")).status_code == 405
    assert client.get(reverse("maintenance:notification_read", kwargs={"pk": notification.pk})).status_code == 405
    notification.refresh_from_db()
    assert notification.read_at is None


def test_it_answers_404_for_an_unknown_patient(client, scheduler):
    client.force_login(scheduler)
    pk = "00000000-0000-4000-8000-000000000000"
    assert client.get(reverse("maintenance:booster_new", kwargs={"pk": pk})).status_code == 404
    assert client.get(reverse("maintenance:plan_edit", kwargs={"pk": pk})).status_code == 404


# --- The board -------------------------------------------------------------------------


def test_it_shows_an_overdue_patient_with_what_to_do(client, scheduler, overdue_patient):
    phq9(overdue_patient, dt.date(2026, 5, 1), level=2)  # 16, at or above the threshold of 10
    client.force_login(scheduler)
    response = client.get(reverse("maintenance:board"))
    html = response.content.decode()
    assert response.status_code == 200
    [row] = response.context["board"].rows
    assert row.status.due.stage == BoosterStage.OVERDUE
    assert row.suggested_on == TODAY
    assert overdue_patient.get_absolute_url() in html
    assert "Overdue" in html
    assert 'class="is-alert"' in html
    assert "PHQ-9 16 is at or above 10" in html
    assert "every 28 days (4 weeks)" in html
    assert "min 14, max 42 days" in html
    new = reverse("maintenance:booster_new", kwargs={"pk": overdue_patient.pk})
    assert f'href="{new}?next=/maintenance/boosters/"' in html
    assert "None booked" in html


def test_it_offers_reschedule_and_cancel_for_a_booked_booster(client, scheduler, overdue_patient):
    booster = given_session(overdue_patient, TODAY + days(2), by=None, status=SessionStatus.SCHEDULED)
    client.force_login(scheduler)
    html = client.get(reverse("maintenance:board") + "?stage=overdue").content.decode()
    back = "?next=/maintenance/boosters/%3Fstage%3Doverdue"
    assert reverse("infusions:move", kwargs={"pk": booster.pk}) + back in html
    assert reverse("infusions:cancel", kwargs={"pk": booster.pk}) + back in html
    assert "Booked" in html
    assert "Wed 17 Jun 2026" in html
    assert "at 10:00" in html


def test_it_filters_the_board_by_stage(client, scheduler, overdue_patient, protocol, clinician):
    soon = PatientFactory(last_name="Soonish")
    given_induction(soon, protocol, TODAY - days(24), by=clinician)
    MaintenancePlanFactory(patient=soon, protocol=protocol)
    client.force_login(scheduler)
    html = client.get(reverse("maintenance:board") + "?stage=due_soon").content.decode()
    assert "Soonish" in html
    assert overdue_patient.last_name not in html
    everything = client.get(reverse("maintenance:board") + "?stage=nonsense").content.decode()
    assert "Soonish" in everything
    assert overdue_patient.last_name in everything


def test_it_lists_patients_who_need_a_plan(client, scheduler, patient, protocol, clinician):
    given_induction(patient, protocol, dt.date(2026, 4, 2), by=clinician)
    client.force_login(scheduler)
    response = client.get(reverse("maintenance:board"))
    [entry] = response.context["board"].needs_plan
    assert entry.patient == patient
    assert entry.induction_ended_on == dt.date(2026, 4, 2)
    assert reverse("maintenance:plan_edit", kwargs={"pk": patient.pk}) in response.content.decode()


def test_it_suggests_the_next_open_day_never_before_today():
    saturday = dt.date(2026, 6, 20)
    assert suggest_booster_day(due_on=saturday, today=TODAY) == dt.date(2026, 6, 22)
    assert suggest_booster_day(due_on=TODAY - days(30), today=TODAY) == TODAY
    ClosedDay.objects.create(date=TODAY, reason="Holiday")
    assert suggest_booster_day(due_on=TODAY - days(30), today=TODAY) == TODAY + days(1)


# --- The board's bulk selector agrees with booster_status -------------------------------


@pytest.fixture
def varied_patients(protocol, clinician):
    """A cast covering every rule booster_status applies, built as the services leave rows."""
    cast = {}

    def person(name, **fields):
        cast[name] = PatientFactory(last_name=name, **fields)
        return cast[name]

    # Overdue, no PHQ-9s; a plan without maximum (the grace setting applies).
    p = person("Overdue")
    given_induction(p, protocol, dt.date(2026, 4, 2), by=clinician)
    MaintenancePlanFactory(patient=p, protocol=protocol, max_interval_days=None)

    # Threshold trigger after induction: due now, not in two weeks.
    p = person("Threshold")
    given_induction(p, protocol, dt.date(2026, 5, 20), by=clinician)
    MaintenancePlanFactory(patient=p, protocol=protocol)
    phq9(p, dt.date(2026, 5, 20), level=0, item_1=3)  # the pre-infusion score of the last visit
    phq9(p, dt.date(2026, 6, 5), level=2)

    # Rise over the post-induction low (threshold off).
    p = person("Rise")
    given_induction(p, protocol, dt.date(2026, 5, 25), by=clinician)
    MaintenancePlanFactory(patient=p, protocol=protocol, trigger_phq9_threshold=None)
    phq9(p, dt.date(2026, 5, 1), level=0)  # before the induction ended: not the low
    phq9(p, dt.date(2026, 5, 27), level=0, item_1=2)
    phq9(p, dt.date(2026, 6, 10), level=1)

    # A high score before the last infusion does not fire.
    p = person("BeforeLast")
    given_induction(p, protocol, dt.date(2026, 3, 2), by=clinician)
    phq9(p, dt.date(2026, 5, 10), level=3)
    given_session(p, dt.date(2026, 5, 22), by=clinician)  # a booster given since
    MaintenancePlanFactory(patient=p, protocol=protocol)

    # A booster given, one booked, one cancelled, one left scheduled in the past.
    p = person("Booked")
    given_induction(p, protocol, dt.date(2026, 3, 2), by=clinician)
    given_session(p, dt.date(2026, 6, 1), by=clinician)
    given_session(p, dt.date(2026, 6, 11), by=None, status=SessionStatus.SCHEDULED)
    given_session(p, dt.date(2026, 6, 24), by=None, status=SessionStatus.CANCELLED)
    given_session(p, dt.date(2026, 6, 29), by=None, status=SessionStatus.SCHEDULED)
    given_session(p, dt.date(2026, 7, 2), by=None, status=SessionStatus.SCHEDULED)
    MaintenancePlanFactory(patient=p, protocol=protocol)

    # A discontinued series: no induction end, so only the threshold counts.
    p = person("Discontinued")
    series = given_induction(p, protocol, dt.date(2026, 5, 4), by=clinician, completed=1)
    series.discontinued_at, series.discontinued_reason = timezone.now(), "Moved away"
    series.save()
    InfusionSession.objects.filter(series=series, status=SessionStatus.SCHEDULED).update(status=SessionStatus.CANCELLED)
    MaintenancePlanFactory(patient=p, protocol=protocol, trigger_phq9_threshold=12)
    phq9(p, TODAY - days(3), level=0, item_1=3, item_2=3)  # a rise of 6, but no induction end
    phq9(p, TODAY - days(2), level=2)  # 16 >= 12

    # An older complete series and a newer discontinued one: the end is the older one's.
    p = person("TwoSeries")
    given_induction(p, protocol, dt.date(2026, 1, 15), by=clinician)
    newer = given_induction(p, protocol, dt.date(2026, 5, 14), by=clinician, completed=2)
    newer.discontinued_at, newer.discontinued_reason = timezone.now(), "Side effects"
    newer.save()
    InfusionSession.objects.filter(series=newer, status=SessionStatus.SCHEDULED).update(status=SessionStatus.CANCELLED)
    MaintenancePlanFactory(patient=p, protocol=protocol, trigger_phq9_threshold=None, trigger_phq9_rise=3)
    phq9(p, dt.date(2026, 1, 20), level=0)
    phq9(p, dt.date(2026, 6, 1), level=0, item_1=3)

    # Not on the board: series in progress, paused plan, nothing completed yet.
    p = person("InProgress")
    given_induction(p, protocol, TODAY + days(3), by=clinician, completed=2)
    MaintenancePlanFactory(patient=p, protocol=protocol)
    p = person("Paused")
    given_induction(p, protocol, dt.date(2026, 4, 2), by=clinician)
    MaintenancePlanFactory(patient=p, protocol=protocol, is_active=False)
    p = person("Nothing")
    MaintenancePlanFactory(patient=p, protocol=protocol)

    # Without a plan: one needs a plan; one is mid-series; one is discharged.
    given_induction(person("NeedsPlan"), protocol, dt.date(2026, 5, 1), by=clinician)
    given_induction(person("MidSeries"), protocol, TODAY + days(3), by=clinician, completed=1)
    given_induction(person("Discharged", status=PatientStatus.DISCHARGED), protocol, dt.date(2026, 5, 1), by=clinician)
    return cast


def test_the_board_agrees_with_booster_status_for_every_patient(varied_patients):
    board = booster_board(today=TODAY)
    on_board = {row.patient.pk: row.status for row in board.rows}
    for name, patient in varied_patients.items():
        assert on_board.get(patient.pk) == booster_status(patient=patient, today=TODAY), name
    # the cast really covers the rules
    stages = {row.status.due.stage for row in board.rows}
    assert stages == set(BoosterStage)
    assert {row.patient.last_name for row in board.rows if row.status.trigger} == {
        "Threshold",
        "Rise",
        "Discontinued",
        "TwoSeries",  # a rise over the low after the older, complete series
    }
    assert next(row.patient.last_name for row in board.rows) == "Overdue"
    assert [entry.patient.last_name for entry in board.needs_plan] == ["NeedsPlan"]
    assert [plan.patient.last_name for plan in board.paused] == ["Paused"]


def test_the_board_agrees_with_booster_status_on_any_day(varied_patients):
    for offset in range(-40, 60, 3):
        today = TODAY + days(offset)
        on_board = {row.patient.pk: row.status for row in booster_board(today=today).rows}
        for name, patient in varied_patients.items():
            assert on_board.get(patient.pk) == booster_status(patient=patient, today=today), (name, today)


def many_patients(count: int, protocol, clinician) -> None:
    for n in range(count):
        p = PatientFactory()
        given_induction(p, protocol, dt.date(2026, 4, 2) + days(n % 40), by=clinician)
        given_session(p, TODAY + days(10 + n % 5), by=None, status=SessionStatus.SCHEDULED)
        phq9(p, dt.date(2026, 6, 1), level=n % 3)
        MaintenancePlanFactory(patient=p, protocol=protocol)
        given_induction(PatientFactory(), protocol, dt.date(2026, 4, 2), by=clinician)  # needs a plan


def test_the_board_takes_a_fixed_number_of_queries(django_assert_max_num_queries, protocol, clinician, scheduler):
    many_patients(3, protocol, clinician)
    with CaptureQueriesContext(connection) as few:
        assert len(booster_board(today=TODAY).rows) == 3
    many_patients(30, protocol, clinician)
    with django_assert_max_num_queries(6), CaptureQueriesContext(connection) as many:
        assert len(booster_board(today=TODAY).rows) == 33
    assert len(many) == len(few)


def test_the_board_page_takes_a_fixed_number_of_queries(client, scheduler, protocol, clinician):
    client.force_login(scheduler)
    many_patients(2, protocol, clinician)
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse("maintenance:board")).status_code == 200
    many_patients(25, protocol, clinician)
    with CaptureQueriesContext(connection) as many:
        assert client.get(reverse("maintenance:board")).status_code == 200
    assert len(many) == len(few) <= 16  # with the access-log row


# --- Booking a booster -----------------------------------------------------------------


def book(client, patient, next_url: str | None = None, **data):
    url = reverse("maintenance:booster_new", kwargs={"pk": patient.pk})
    if next_url is not None:
        url += f"?next={next_url}"
    return client.post(url, {"date": "2026-06-16", "time": "10:00"} | data)


def test_it_prefills_the_suggested_date_and_ten_o_clock(client, scheduler, overdue_patient):
    client.force_login(scheduler)
    response = client.get(reverse("maintenance:booster_new", kwargs={"pk": overdue_patient.pk}))
    html = response.content.decode()
    assert 'value="2026-06-15"' in html
    assert 'value="10:00"' in html
    assert "Overdue" in html


def test_it_books_a_booster_and_goes_back_to_the_board(client, scheduler, overdue_patient):
    client.force_login(scheduler)
    response = book(client, overdue_patient)
    assert response.status_code == 302
    assert response.url == reverse("maintenance:board")
    booster = BoosterAppointment.objects.get()
    assert booster.scheduled_at == clinic_datetime(dt.date(2026, 6, 16), dt.time(10))
    assert "Booster booked for" in client.get(response.url).content.decode()


def test_it_goes_back_to_a_safe_next_and_never_to_another_site(client, scheduler, overdue_patient):
    client.force_login(scheduler)
    page = overdue_patient.get_absolute_url()
    assert book(client, overdue_patient, next_url=page).url == page
    for unsafe in (EVIL, "//evil.example/x", "/\\evil.example"):
        BoosterAppointment.objects.all().delete()
        assert book(client, overdue_patient, next_url=unsafe).url == reverse("maintenance:board")
        BoosterAppointment.objects.all().delete()
        assert book(client, overdue_patient, next=unsafe).url == reverse("maintenance:board")


@pytest.mark.parametrize(
    ("date", "message"),
    [
        ("2026-06-20", "closed"),  # a Saturday
        ("2026-06-12", "past"),
        ("", "This field is required"),
        ("not a date", "Enter a valid date"),
    ],
)
def test_it_shows_a_bad_date_next_to_the_field_and_books_nothing(client, scheduler, overdue_patient, date, message):
    client.force_login(scheduler)
    response = book(client, overdue_patient, date=date)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors["date"])
    assert f'value="{date}"' in response.content.decode() or not date
    assert not BoosterAppointment.objects.exists()


def test_it_refuses_a_booster_before_the_minimum_interval(client, scheduler, patient, protocol, clinician):
    given_induction(patient, protocol, TODAY - days(5), by=clinician)
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    client.force_login(scheduler)
    response = book(client, patient, date="2026-06-17")
    assert "minimum interval" in " ".join(response.context["form"].errors["date"])
    assert not BoosterAppointment.objects.exists()


def test_it_refuses_boosters_on_consecutive_days(client, scheduler, overdue_patient):
    given_session(overdue_patient, dt.date(2026, 6, 17), by=None, status=SessionStatus.SCHEDULED)
    client.force_login(scheduler)
    response = book(client, overdue_patient, date="2026-06-16")
    assert "consecutive days" in " ".join(response.context["form"].errors["date"])
    assert BoosterAppointment.objects.count() == 1


def test_it_says_a_plan_is_needed_first(client, scheduler, patient, protocol, clinician):
    given_induction(patient, protocol, dt.date(2026, 4, 2), by=clinician)
    client.force_login(scheduler)
    page = client.get(reverse("maintenance:booster_new", kwargs={"pk": patient.pk})).content.decode()
    assert "has no maintenance plan yet" in page
    response = book(client, patient)
    assert "no maintenance plan" in " ".join(response.context["form"].non_field_errors())
    assert 'value="2026-06-16"' in response.content.decode()
    assert not BoosterAppointment.objects.exists()


# --- The maintenance plan --------------------------------------------------------------

PLAN = {
    "target_interval_days": "35",
    "min_interval_days": "21",
    "max_interval_days": "49",
    "trigger_phq9_threshold": "12",
    "trigger_phq9_rise": "",
    "is_active": "on",
    "notes": "Prefers Tuesday mornings.",
}


def test_it_creates_a_plan_and_goes_to_the_patient_page(client, scheduler, patient, protocol):
    client.force_login(scheduler)
    url = reverse("maintenance:plan_edit", kwargs={"pk": patient.pk})
    assert "Create a maintenance plan" in client.get(url).content.decode()
    response = client.post(url, PLAN | {"protocol": protocol.pk})
    assert response.status_code == 302
    assert response.url == patient.get_absolute_url()
    plan = MaintenancePlan.objects.get(patient=patient)
    assert (plan.target_interval_days, plan.min_interval_days, plan.max_interval_days) == (35, 21, 49)
    assert plan.trigger_phq9_threshold == 12
    assert plan.trigger_phq9_rise is None  # left empty: off
    assert plan.notes == "Prefers Tuesday mornings."


def test_it_edits_the_one_plan(client, scheduler, patient, protocol):
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    client.force_login(scheduler)
    url = reverse("maintenance:plan_edit", kwargs={"pk": patient.pk})
    page = client.get(url).content.decode()
    assert "Now 28 days (4 weeks)." in page
    response = client.post(url + f"?next={EVIL}", PLAN | {"protocol": protocol.pk, "is_active": ""})
    assert response.url == patient.get_absolute_url()  # never the external next
    plan = MaintenancePlan.objects.get()
    assert plan.target_interval_days == 35
    assert plan.is_active is False


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"min_interval_days": "40"}, "min_interval_days"),
        ({"max_interval_days": "30"}, "max_interval_days"),
        ({"target_interval_days": "3"}, "target_interval_days"),
        ({"target_interval_days": ""}, "target_interval_days"),
        ({"trigger_phq9_threshold": "30"}, "trigger_phq9_threshold"),
    ],
)
def test_it_shows_an_inconsistent_plan_next_to_the_field_and_saves_nothing(
    client, scheduler, patient, protocol, change, field
):
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    client.force_login(scheduler)
    response = client.post(
        reverse("maintenance:plan_edit", kwargs={"pk": patient.pk}), PLAN | {"protocol": protocol.pk} | change
    )
    assert response.status_code == 200
    assert response.context["form"].errors[field]
    plan = MaintenancePlan.objects.get()
    assert (plan.target_interval_days, plan.min_interval_days, plan.notes) == (28, 14, "")
    value = next(iter(change.values()))
    assert not value or f'value="{value}"' in response.content.decode()


def test_it_offers_only_protocols_in_use(client, scheduler, patient, protocol):
    retired = ProtocolFactory(name="Retired IM protocol", is_active=False)
    client.force_login(scheduler)
    url = reverse("maintenance:plan_edit", kwargs={"pk": patient.pk})
    assert "Retired IM protocol" not in client.get(url).content.decode()
    response = client.post(url, PLAN | {"protocol": retired.pk})
    assert response.context["form"].errors["protocol"]
    assert not MaintenancePlan.objects.exists()


# --- The inbox -------------------------------------------------------------------------


def notify(user, title: str, *, read: bool = False, link: str = "", patient=None) -> Notification:
    return Notification.objects.create(
        recipient=user,
        kind=NotificationKind.BOOSTER_STAGE,
        title=title,
        body="Booster due.",
        link=link,
        patient=patient,
        read_at=timezone.now() if read else None,
    )


def test_it_lists_only_the_users_notifications_newest_first(client, scheduler, other_clinician, patient):
    with time_machine.travel(NOW - days(1), tick=False):
        notify(scheduler, "Older one", read=True)
    notify(scheduler, "Newer one", patient=patient)
    notify(other_clinician, "Someone else's")
    client.force_login(scheduler)
    response = client.get(reverse("maintenance:inbox"))
    html = response.content.decode()
    assert html.index("Newer one") < html.index("Older one")
    assert "Someone else's" not in html
    assert "<strong>Newer one</strong>" in html
    assert "Unread" in html
    assert patient.get_absolute_url() in html
    assert response.context["unread_count"] == 1


def test_it_filters_unread_and_pages_by_25(client, scheduler):
    for n in range(30):
        notify(scheduler, f"Note {n:02d}", read=n % 3 == 0)
    client.force_login(scheduler)
    unread = client.get(reverse("maintenance:inbox") + "?show=unread")
    assert len(unread.context["items"]) == 20
    assert all(item["notification"].read_at is None for item in unread.context["items"])
    second = client.get(reverse("maintenance:inbox") + "?page=2")
    assert len(second.context["items"]) == 5


def test_it_marks_one_read_and_follows_its_link(client, scheduler, patient):
    notification = notify(scheduler, "Booster due", link=patient.get_absolute_url())
    client.force_login(scheduler)
    response = client.post(reverse("maintenance:notification_read", kwargs={"pk": notification.pk}))
    assert response.url == patient.get_absolute_url()
    notification.refresh_from_db()
    assert notification.read_at == NOW
    assert client.get(reverse("maintenance:inbox")).context["unread_count"] == 0


@pytest.mark.parametrize("link", ["//evil.example/phish", "/\\evil.example", "https://evil.example"])
def test_a_notification_never_links_to_another_site(scheduler, link):
    with pytest.raises(IntegrityError), transaction.atomic():
        notify(scheduler, "Odd link", link=link)


def test_a_user_cannot_read_or_mark_another_users_notification(client, scheduler, other_clinician):
    theirs = notify(other_clinician, "Private to Dr Okafor")
    client.force_login(scheduler)
    response = client.post(reverse("maintenance:notification_read", kwargs={"pk": theirs.pk}))
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None
    assert "Private to Dr Okafor" not in client.get(reverse("maintenance:inbox")).content.decode()


def test_it_marks_all_the_users_notifications_read_and_only_theirs(client, scheduler, other_clinician):
    for n in range(3):
        notify(scheduler, f"Mine {n}")
    theirs = notify(other_clinician, "Theirs")
    client.force_login(scheduler)
    assert client.get(reverse("maintenance:inbox")).context["unread_count"] == 3
    response = client.post(reverse("maintenance:read_all"), {"next": EVIL})
    assert response.url == reverse("maintenance:inbox")
    page = client.get(response.url)
    assert page.context["unread_count"] == 0
    assert "Marked 3 notifications as read." in page.content.decode()
    theirs.refresh_from_db()
    assert theirs.read_at is None
