"""Query budgets: every page and every API read costs a number of queries that does not
grow with the data.

BUDGETS is the table: URL name -> {role: the most queries one GET may run}. The walk takes
every URL pattern from Django's URL resolver (so a new page cannot escape: one without a
row fails ``test_every_page_has_a_budget``), builds a small clinic, GETs each page as each
role in its row and counts the queries; then it grows the clinic several-fold (more
patients, PHQ-9s, series, infusions, vital signs, amendments, boosters, plans, protocols,
notifications and access-log rows, and a longer history for the very records whose pages
take an id) and GETs them again. The counts must be equal, and within the budget.

Every signed-in request writes one access-log row (audit/middleware.py): one query, in
every count. The idle-timeout and two-factor middlewares write the session at most once a
minute; time is frozen and each client makes one unmeasured request first, so neither
writes during a measured one.

The pages that are POST-only (actions, not pages) are in POST_ONLY, and the walk checks
that each one really refuses a GET. The admin is Django's (its lists use
list_select_related, clinic/admin.py and each app's admin.py): not in this table.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import resolve, reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.regex_helper import normalize
from knox.models import AuthToken
from rest_framework.test import APIClient

from audit.models import AccessLog, Channel, Outcome
from maintenance.models import MaintenancePlan, Notification, NotificationKind
from sessions.models import (
    Drug,
    InductionSeries,
    InfusionAmendment,
    InfusionSession,
    Protocol,
    Route,
    SessionKind,
    SessionStatus,
    SideEffect,
    SideEffectKind,
    VitalSignReading,
)
from sessions.scheduling import clinic_datetime
from sessions.vitals import VitalPhase
from tests.factories import MaintenancePlanFactory, PatientFactory, PHQ9Factory, UserFactory
from tests.test_csp import pages
from tests.test_pages_maintenance import given_induction, given_session

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = dt.date(2026, 11, 23)  # winter: the clinic is at UTC-05:00
NOW = dt.datetime.combine(MONDAY, dt.time(13, 0), tzinfo=NEW_YORK)

#: How many "units" of data the small clinic has, and how many the large one adds.
SMALL, GROWTH = 1, 5

# Every count below includes pghistory's context, set around the request (two statements,
# audit/middleware.py) and, for a signed-in user: the session (pages) or the token (API: knox
# reads it twice, once for the access log, once for DRF), the user, the user's roles (groups)
# and the access-log row. Pages with the site header add the inbox's unread count.
BUDGETS: dict[str, dict[str, int]] = {
    # --- Project pages ---------------------------------------------------------------------
    "home": {"clinician": 6},  # session, user, roles, access log (and context): a redirect by role
    "health": {"anonymous": 7},  # session, SELECT 1, the scan's last run, pending and failed reminders
    "login": {"anonymous": 6},  # the session read and saved (the wizard's state), in a savepoint
    # Two-factor pages (staff): the user's devices on top of the signed-in request's queries.
    "two_factor:profile": {"clinician": 12},  # the default device, backup tokens, the session
    "two_factor:setup": {"clinician": 12},  # the user's devices, the wizard's state saved
    "two_factor:qr": {"clinician": 6},  # the QR code (an image) of the key in the session
    "two_factor:setup_complete": {"clinician": 6},  # no device: a redirect to the setup
    "two_factor:backup_tokens": {"clinician": 6},  # no device: a redirect to the setup
    "two_factor:disable": {"clinician": 6},  # no device: a redirect to the setup
    # Patients: the list is one page of annotated rows (latest PHQ-9, next appointment).
    "patients:list": {"scheduler": 9, "clinician": 9},  # + count, the page's rows
    "patients:create": {"scheduler": 8},  # the form's choices (clinicians)
    # The patient page: the patient with the history in one read (sessions.selectors.
    # PatientHistory), from which the curve, summary, booster status, upcoming and timeline come.
    "patients:detail": {"clinician": 10, "scheduler": 10},
    "patients:edit": {"scheduler": 10},  # the patient, the form's choices
    "patients:phq9_new": {"clinician": 9},  # the patient
    # Portal (the patient's own): the history read once, the next questionnaire day.
    "portal:home": {"patient": 10},
    "portal:phq9": {"patient": 9},  # the patient, the day's limit
    "portal:crisis": {"patient": 7},  # the signed-in request only
    "portal:download": {"patient": 13},  # the patient, the curve's PHQ-9s, series and infusions
    "portal:welcome": {"anonymous": 7},  # the link's user, the token into the session, a redirect
    # Infusions
    "infusions:today": {"clinician": 8},  # the day's rows with series number and last PHQ-9
    "infusions:week": {"scheduler": 9},  # closed days, the week's rows
    "infusions:outcomes": {"clinician": 9},  # the three aggregates in one statement, the filter form's choices
    "infusions:series_new": {"scheduler": 10},  # the patient, the protocols
    "infusions:makeup": {"scheduler": 14},  # series, progress, its sessions, closed days + bookings ahead
    # The infusion log (in progress, signed, missed): the infusion with its series number,
    # readings, side effects, amendments with their authors, the series' room for a make-up.
    "infusions:detail": {"clinician": 12},
    "infusions:move": {"scheduler": 9},  # the appointment
    "infusions:cancel": {"scheduler": 9},  # the appointment
    # Maintenance
    "maintenance:board": {"scheduler": 16},  # the board's few statements, reminder health
    "maintenance:booster_new": {"scheduler": 16},  # status, plan, booked, series progress
    "maintenance:plan_edit": {"scheduler": 12},  # the plan, last infusion, the protocols
    "maintenance:inbox": {"scheduler": 10, "clinician": 10},  # + count, the page, unread total
    # Audit: one page of reads (with record numbers) and the changes, for one patient.
    "audit:search": {"auditor": 21},
    # --- API (token) --------------------------------------------------------------------------
    "api:api-root": {"clinician": 5},  # the token (twice), the access log
    "api:me": {"clinician": 6},  # + the roles
    "api:schema": {"anonymous": 3},  # the session (the schema is built without queries)
    "api:docs": {"anonymous": 3},  # the session
    "api:patient-list": {"clinician": 8, "patient": 8},  # count, page (annotated), prefetches
    "api:patient-detail": {"clinician": 12, "patient": 12},  # progress, booster status
    "api:patient-response-curve": {"clinician": 13, "patient": 13},  # PHQ-9s, series, infusions
    "api:phq9-list": {"clinician": 8, "scheduler": 8, "patient": 8},  # count, the page (acknowledger joined)
    "api:phq9-detail": {"clinician": 8},  # the assessment
    "api:protocol-list": {"clinician": 8},  # count, the page
    "api:protocol-detail": {"clinician": 7},  # the protocol
    "api:series-list": {"clinician": 9, "patient": 9},  # + sessions prefetched
    "api:series-detail": {"clinician": 9},  # the series with progress, its sessions
    "api:infusion-list": {"clinician": 11, "scheduler": 8, "patient": 8},  # + vitals, effects, amendments
    "api:infusion-detail": {"clinician": 11},  # the infusion, vitals, effects, amendments
    "api:booster-list": {"clinician": 11, "patient": 8},  # as the infusion list
    "api:booster-detail": {"clinician": 11},  # as the infusion detail
    "api:booster-due": {"scheduler": 12},  # the board
    "api:maintenance-plan-list": {"scheduler": 8},  # count, the page (patient, protocol joined)
    "api:maintenance-plan-detail": {"scheduler": 9},  # + booster status
    "api:notification-list": {"clinician": 8},  # count, the page
    "api:notification-detail": {"clinician": 8},  # the notification
}

#: Actions, not pages: each refuses a GET (checked by ``test_every_action_refuses_a_get``).
POST_ONLY = {
    "logout",
    "patients:invite",
    "patients:phq9_acknowledge",
    "infusions:series_discontinue",
    "infusions:start",
    "infusions:vitals",
    "infusions:side_effect",
    "infusions:complete",
    "infusions:discharge",
    "infusions:sign",
    "infusions:amend",
    "maintenance:read_all",
    "maintenance:notification_read",
    "api:token",
    "api:logout",
    "api:phq9-acknowledge",
    "api:series-preview",
    "api:series-discontinue",
    "api:series-makeup",
    "api:infusion-start",
    "api:infusion-vitals",
    "api:infusion-side-effects",
    "api:infusion-complete",
    "api:infusion-discharge",
    "api:infusion-sign",
    "api:infusion-amend",
    "api:infusion-reschedule",
    "api:infusion-cancel",
    "api:infusion-missed",
    "api:notification-read",
    "api:notification-read-all",
}

#: Which record a URL's id is. Several: the page is measured for each (an infusion in
#: progress shows readings; a signed one, amendments).
RECORDS: dict[str, tuple[str, ...]] = {
    "patients:detail": ("patient",),
    "patients:edit": ("patient",),
    "patients:invite": ("patient",),
    "patients:phq9_new": ("patient",),
    "patients:phq9_acknowledge": ("phq9",),
    "infusions:series_new": ("patient",),
    "infusions:makeup": ("series",),
    "infusions:series_discontinue": ("series",),
    "infusions:detail": ("in_progress", "signed", "missed"),
    **{
        f"infusions:{name}": ("in_progress",)
        for name in ("start", "vitals", "side_effect", "complete", "discharge", "sign", "amend")
    },
    "infusions:move": ("appointment",),
    "infusions:cancel": ("appointment",),
    "maintenance:booster_new": ("patient",),
    "maintenance:plan_edit": ("patient",),
    "maintenance:notification_read": ("notification",),
    "api:patient-detail": ("patient",),
    "api:patient-response-curve": ("patient",),
    "api:phq9-detail": ("phq9",),
    "api:phq9-acknowledge": ("phq9",),
    "api:protocol-detail": ("protocol",),
    "api:series-detail": ("series",),
    "api:series-discontinue": ("series",),
    "api:series-makeup": ("series",),
    "api:infusion-detail": ("in_progress", "signed"),
    "api:booster-detail": ("booster",),
    "api:maintenance-plan-detail": ("plan",),
    "api:notification-detail": ("notification",),
    "api:notification-read": ("notification",),
}
RECORDS |= {
    f"api:infusion-{action}": ("in_progress",)
    for action in ("start", "vitals", "side-effects", "complete", "discharge", "sign", "amend")
}
RECORDS |= {f"api:infusion-{action}": ("appointment",) for action in ("reschedule", "cancel", "missed")}


def _is_admin(name: str | None) -> bool:
    return bool(name) and name.startswith("admin:")


def page_names() -> set[str]:
    """The name of the view answering each pattern outside the admin (a pattern shadowed
    by another for the same path, as two-factor's own login is, counts as that one)."""
    names = set()
    for page in pages():
        if _is_admin(page.name):
            continue
        template, params = normalize(page.regex)[0]
        path = "/" + template % {param: str(uuid.uuid4()) if param == "pk" else "x" for param in params}
        name = resolve(path).view_name
        if not _is_admin(name):
            names.add(name)
    return names


def test_every_page_has_a_budget():
    found = page_names()
    missing = sorted(found - set(BUDGETS) - POST_ONLY)
    stale = sorted((set(BUDGETS) | POST_ONLY) - found)
    assert not missing, f"Pages without a row in BUDGETS (measure them, give them a budget): {missing}"
    assert not stale, f"Rows for pages that no longer exist: {stale}"
    assert not set(BUDGETS) & POST_ONLY


def test_every_budget_says_why_and_stays_small():
    for name, roles in BUDGETS.items():
        assert roles, name
        for role, budget in roles.items():
            assert role in ROLES, (name, role)
            assert 0 < budget <= 30, (name, role, budget)


# --- The clinic --------------------------------------------------------------------------------

ROLES = ("anonymous", "clinician", "scheduler", "patient", "auditor")


def _completed(patient, day: dt.date, *, by, series=None, signed: bool = False) -> InfusionSession:
    """A given, discharged infusion (signed if asked)."""
    start = clinic_datetime(day, dt.time(9))
    return InfusionSession.objects.create(
        patient=patient,
        series=series,
        kind=SessionKind.INDUCTION if series else SessionKind.BOOSTER,
        scheduled_at=start,
        status=SessionStatus.COMPLETED,
        route=Route.IV,
        drug=Drug.KETAMINE,
        dose_mg_per_kg=Decimal("0.50"),
        weight_kg_used=Decimal("72.5"),
        dose_mg=Decimal("36.3"),
        started_at=start,
        ended_at=start + dt.timedelta(minutes=40),
        administered_by=by,
        discharged_at=start + dt.timedelta(minutes=90),
        discharged_by=by,
        signed_at=start + dt.timedelta(minutes=95) if signed else None,
        signed_by=by if signed else None,
    )


def _notify(user, title: str, patient=None, *, read: bool = False) -> Notification:
    return Notification.objects.create(
        recipient=user,
        kind=NotificationKind.BOOSTER_STAGE,
        title=title,
        patient=patient,
        link=patient.get_absolute_url() if patient else "",
        read_at=NOW if read else None,
    )


class Clinic:
    """Patient A (the records whose pages take an id) among other patients; ``grow``
    adds ``n`` units to both: A's history lengthens, and the clinic gets more patients."""

    def __init__(self, *, clinician, scheduler, auditor, patient, protocol):
        self.clinician, self.scheduler, self.auditor, self.patient, self.protocol = (
            clinician,
            scheduler,
            auditor,
            patient,
            protocol,
        )
        self.units = 0
        patient.primary_clinician = clinician
        patient.save(update_fields=["primary_clinician"])
        # A's current series: the first infusion given and signed, today's under way, the
        # next one booked on Thursday, one missed.
        thursday_before = MONDAY - dt.timedelta(days=4)
        self.series = InductionSeries.objects.create(
            patient=patient, protocol=protocol, planned_infusions=6, infusions_per_week=2, start_date=thursday_before
        )
        self.signed = _completed(patient, thursday_before, by=clinician, series=self.series, signed=True)
        self.missed = given_session(
            patient, MONDAY - dt.timedelta(days=2), by=None, series=self.series, status=SessionStatus.MISSED
        )
        start = clinic_datetime(MONDAY, dt.time(9))
        self.in_progress = InfusionSession.objects.create(
            patient=patient,
            series=self.series,
            kind=SessionKind.INDUCTION,
            scheduled_at=start,
            route=Route.IV,
            drug=Drug.KETAMINE,
            dose_mg_per_kg=Decimal("0.50"),
            weight_kg_used=Decimal("72.5"),
            dose_mg=Decimal("36.3"),
            started_at=start,
            administered_by=clinician,
        )
        self.appointment = given_session(
            patient, MONDAY + dt.timedelta(days=3), by=None, series=self.series, status=SessionStatus.SCHEDULED
        )
        self.booster = given_session(patient, MONDAY + dt.timedelta(days=45), by=None, status=SessionStatus.SCHEDULED)
        self.phq9 = PHQ9Factory(patient=patient, item_9=1, taken_at=NOW - dt.timedelta(hours=1))
        self.plan = MaintenancePlanFactory(patient=patient, protocol=protocol)
        self.notification = _notify(clinician, "Booster due", patient)
        self.grow(SMALL)

    def record(self, key: str):
        return {
            "patient": self.patient,
            "series": self.series,
            "in_progress": self.in_progress,
            "signed": self.signed,
            "missed": self.missed,
            "appointment": self.appointment,
            "booster": self.booster,
            "phq9": self.phq9,
            "plan": self.plan,
            "protocol": self.protocol,
            "notification": self.notification,
        }[key]

    def grow(self, n: int) -> None:
        for _ in range(n):
            self._unit(self.units)
            self.units += 1

    def _unit(self, i: int) -> None:
        a, clinician, scheduler = self.patient, self.clinician, self.scheduler
        # A colleague per unit: rows name many different users (who gave, signed, amended,
        # acknowledged), so a user fetched per row would show.
        colleague = UserFactory(username=f"colleague_{i}", role="clinician")
        # A's history: an earlier series and booster, PHQ-9s, readings, side effects,
        # amendments, cancelled appointments of the current series, notifications.
        first_day = dt.date(2025, 1, 6) + dt.timedelta(weeks=6 * i)
        given_induction(a, self.protocol, first_day + dt.timedelta(days=14), by=colleague)
        _completed(a, first_day + dt.timedelta(days=28), by=colleague, signed=True)
        for k in range(3):
            PHQ9Factory(patient=a, level=1 + (i + k) % 2, taken_at=clinic_datetime(first_day, dt.time(8 + k)))
        PHQ9Factory(
            patient=a,
            item_9=2,
            taken_at=clinic_datetime(first_day, dt.time(12)),
            safety_acknowledged_at=clinic_datetime(first_day, dt.time(13)),
            safety_acknowledged_by=colleague,
            safety_action="Called; safety plan reviewed.",
        )
        for k in range(3):
            VitalSignReading.objects.create(
                session=self.in_progress,
                taken_at=self.in_progress.started_at + dt.timedelta(minutes=3 * i + k),
                phase=VitalPhase.DURING,
                systolic=150 + k * 10,  # some readings past the review and alert thresholds
                diastolic=85,
                heart_rate=80,
                spo2=97,
                recorded_by=colleague,
            )
        kinds = list(SideEffectKind)
        if i < len(kinds):
            SideEffect.objects.create(session=self.in_progress, kind=kinds[i], note="noted")
        for k in range(2):
            InfusionAmendment.objects.create(
                session=self.signed,
                author=colleague if k else scheduler,
                reason=f"Correction {i}.{k}",
                changes={"notes": {"from": "", "to": f"note {i}.{k}"}, "dissociation_score": {"from": 1, "to": 2}},
            )
        given_session(
            a,
            MONDAY + dt.timedelta(days=4 + i),
            by=None,
            series=self.series,
            status=SessionStatus.CANCELLED,
        )
        # A's bookings ahead, every other day: the make-up page's suggested day moves later.
        given_session(a, MONDAY + dt.timedelta(days=5 + 2 * i), by=None, status=SessionStatus.SCHEDULED)
        for user in (clinician, scheduler, a.user):
            _notify(user, f"About A {i}", a, read=i % 2 == 0)
        AccessLog.objects.bulk_create(
            [
                AccessLog(
                    user=clinician,
                    username=clinician.username,
                    patient_id=a.pk,
                    channel=Channel.PAGE,
                    method="GET",
                    path=f"/patients/{a.pk}/",
                    view="patients:detail",
                    object_id=str(a.pk),
                    status_code=200,
                    outcome=Outcome.ALLOWED,
                )
                for _ in range(10)
            ]
        )
        # The clinic: more patients at every stage, more protocols.
        Protocol.objects.create(
            name=f"IV induction variant {i}",
            infusion_count=6,
            infusions_per_week=2,
            route=Route.IV,
            drug=Drug.KETAMINE,
            dose=Decimal("0.50"),
            duration_minutes=40,
        )
        for k in range(3):
            other = PatientFactory(with_portal_account=k == 0, primary_clinician=colleague)
            series = given_induction(other, self.protocol, dt.date(2026, 10, 1) + dt.timedelta(days=k), by=colleague)
            if k == 2:
                series.discontinued_at, series.discontinued_reason = NOW, "Moved away."
                series.save(update_fields=["discontinued_at", "discontinued_reason"])
            _completed(other, dt.date(2026, 11, 2) + dt.timedelta(days=i % 3), by=colleague, signed=k == 1)
            given_session(other, MONDAY, by=None, status=SessionStatus.SCHEDULED, at=dt.time(10 + k))  # today
            given_session(other, MONDAY + dt.timedelta(days=2), by=None, status=SessionStatus.SCHEDULED)
            for week in range(3):
                PHQ9Factory(
                    patient=other,
                    level=week % 3,
                    item_9=1 if week == 0 else 0,
                    taken_at=clinic_datetime(series.start_date + dt.timedelta(weeks=week), dt.time(8)),
                    entered_by=colleague,
                    **(
                        {"safety_acknowledged_at": NOW, "safety_acknowledged_by": colleague, "safety_action": "Called."}
                        if week == 0 and k
                        else {}
                    ),
                )
            if k < 2:
                MaintenancePlanFactory(patient=other, protocol=self.protocol)
            _notify(clinician, f"Other {i}.{k}", other)
            _notify(scheduler, f"Other {i}.{k}", other, read=True)


# --- The walk ------------------------------------------------------------------------------------


def _path(name: str, clinic: Clinic) -> list[tuple[str, str]]:
    """(label, path) for each record the page is measured with."""
    if name == "portal:welcome":
        user = clinic.patient.user
        kwargs = {
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        }
        return [("", reverse(name, kwargs=kwargs))]
    if name == "audit:search":
        return [("patient A", f"{reverse(name)}?patient={clinic.patient.mrn}")]
    if name in RECORDS:
        return [(key, reverse(name, kwargs={"pk": clinic.record(key).pk})) for key in RECORDS[name]]
    return [("", reverse(name))]


def _clients(clinic: Clinic, role: str):
    """A browser session and an API client (by token) for one role."""
    user = {
        "anonymous": None,
        "clinician": clinic.clinician,
        "scheduler": clinic.scheduler,
        "patient": clinic.patient.user,
        "auditor": clinic.auditor,
    }[role]
    browser, api = Client(), APIClient()
    if user is not None:
        browser.force_login(user)
        api.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=user)[1]}")
    return browser, api


def _get(clients, path: str):
    browser, api = clients
    return (api if path.startswith("/api/v1/") else browser).get(path)


def _warm(clients, path: str) -> None:
    """One unmeasured GET first: the session's once-a-minute writes happen there."""
    cache.clear()  # the API's throttles
    _get(clients, path)
    cache.clear()


def _measure(clients, path: str) -> tuple[int, int, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = _get(clients, path)
    return len(captured), response.status_code, [query["sql"] for query in captured]


def _sizes(clinic: Clinic) -> dict[str, int]:
    a = clinic.patient
    return {
        "patients": type(a).objects.count(),
        "A's PHQ-9s": a.phq9_assessments.count(),
        "A's infusions": a.infusion_sessions.count(),
        "A's series": a.series.count(),
        "readings": clinic.in_progress.vitals.count(),
        "amendments": clinic.signed.amendments.count(),
        "plans": MaintenancePlan.objects.count(),
        "protocols": Protocol.objects.count(),
        "notifications": Notification.objects.count(),
    }


@pytest.fixture
def clinic(clinician, scheduler, auditor, patient, protocol):
    with time_machine.travel(NOW, tick=False):
        yield Clinic(clinician=clinician, scheduler=scheduler, auditor=auditor, patient=patient, protocol=protocol)


#: What each page answers its role (anything not here: 200).
STATUS = {
    "home": 302,  # to the role's start page
    "portal:welcome": 302,  # to the set-password form, the token moved into the session
    # Without a device, two-factor's pages about one send the user to the setup.
    "two_factor:setup_complete": 302,
    "two_factor:backup_tokens": 302,
    "two_factor:disable": 302,
}

#: The counts measured, for the report (printed with -s).
MEASURED: dict[tuple[str, str, str], tuple[int, int, int]] = {}


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_each_page_runs_the_same_queries_for_a_small_and_a_large_clinic(clinic, role, django_assert_max_num_queries):
    rows = [(name, roles[role]) for name, roles in BUDGETS.items() if role in roles]
    assert rows
    with time_machine.travel(NOW, tick=False):
        clients = _clients(clinic, role)
        for name, _budget in rows:  # a walk first: cookies and sessions as they will stay
            for _label, path in _path(name, clinic):
                _warm(clients, path)
        small, wrong_status = {}, {}
        for name, _budget in rows:
            for label, path in _path(name, clinic):
                _warm(clients, path)
                count, status, _sql = _measure(clients, path)
                if status != STATUS.get(name, 200):
                    wrong_status[name, label] = status
                small[name, label] = count, path

        sizes = _sizes(clinic)
        clinic.grow(GROWTH)
        grown = _sizes(clinic)
        assert all(grown[what] >= 3 * sizes[what] for what in sizes), (sizes, grown)
        problems = []
        for name, budget in rows:
            for label, path in _path(name, clinic):
                _warm(clients, path)
                try:
                    with django_assert_max_num_queries(budget):
                        count, status, sql = _measure(clients, path)
                except pytest.fail.Exception as error:
                    problems.append(f"{name} [{label}] as {role}: over its budget of {budget}: {error}")
                before = small[name, label][0]
                MEASURED[name, role, label] = (before, count, budget)
                if count != before:
                    problems.append(
                        f"{name} [{label}] as {role}: {before} queries small, {count} large:\n" + "\n".join(sql)
                    )
    assert not wrong_status, f"{role}: answers other than STATUS says: {wrong_status}"
    for (name, r, label), (before, after, budget) in sorted(MEASURED.items()):
        if r == role:
            print(f"{name:32} {label:12} {r:10} {before:3} {after:3} {budget:3}")
    assert not problems, "\n\n".join(problems)


@pytest.mark.django_db
def test_every_action_refuses_a_get(clinic):
    with time_machine.travel(NOW, tick=False):
        browser, api = _clients(clinic, "clinician")
        wrong = {}
        for name in sorted(POST_ONLY):
            for _label, path in _path(name, clinic):
                cache.clear()
                response = (api if path.startswith("/api/") else browser).get(path)
                # Pages: 405. API actions: 403 (ActionRoles gives no role a GET on them).
                if response.status_code != (403 if path.startswith("/api/v1/") and "/auth/" not in path else 405):
                    wrong[path] = response.status_code
    assert not wrong, wrong
