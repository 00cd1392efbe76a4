"""Load a demo clinic: staff of each role and about 40 patients at every stage of care.

Everything is written through the same services as the staff screens, so the demo data
obeys every rule (clinic days, spacing, doses, signatures). Dates are relative to today.
Running it again leaves an existing demo clinic as it is.

Demo logins (password ``demo``): admin (superuser), clinician, scheduler, auditor, patient.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from contextlib import nullcontext
from dataclasses import dataclass
from decimal import Decimal

import pghistory
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from maintenance.models import Notification, NotificationKind
from maintenance.services import booster_schedule, maintenance_plan_save
from patients.access import Role
from patients.models import Diagnosis, Patient, PatientStatus
from patients.phq9 import ITEM_FIELDS
from patients.services import phq9_acknowledge_safety, phq9_record
from sessions.models import ClosedDay, DoseUnit, Drug, InfusionSession, Protocol, Route, SessionStatus
from sessions.scheduling import clinic_datetime, is_open_day
from sessions.services import (
    series_create,
    series_schedule_makeup,
    session_complete,
    session_discharge,
    session_mark_missed,
    session_record_side_effect,
    session_record_vitals,
    session_sign,
    session_start,
)
from sessions.vitals import VitalPhase

DEMO_PASSWORD = "demo"
MRN_PREFIX = "KC-"
SEED = 20261121

STAFF = [
    # username, first, last, role (None: superuser)
    ("admin", "Alex", "Admin", None),
    ("clinician", "Maya", "Lee", Role.CLINICIAN),
    ("clinician2", "Daniel", "Okafor", Role.CLINICIAN),
    ("nurse", "Priya", "Raman", Role.CLINICIAN),
    ("scheduler", "Sam", "Ortiz", Role.SCHEDULER),
    ("scheduler2", "Jo", "Kim", Role.SCHEDULER),
    ("auditor", "Rae", "Ahmed", Role.AUDITOR),
]

FIRST_NAMES = [
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Ethan", "Sophia", "Mason", "Isabella", "Lucas", "Mia", "Logan",
    "Amelia", "James", "Harper", "Benjamin", "Evelyn", "Elijah", "Abigail", "Henry", "Ella", "Owen", "Grace",
    "Samuel", "Chloe", "Jack", "Nora", "Levi", "Riley", "Caleb", "Zoe", "Isaac", "Lily", "Wyatt", "Hannah",
    "Julian", "Aria", "Leo", "Layla", "Ezra",
]  # fmt: skip
LAST_NAMES = [
    "Bennett", "Carter", "Diaz", "Ellis", "Foster", "Garcia", "Hughes", "Iverson", "Jensen", "Khan", "Lopez",
    "Morgan", "Nguyen", "Owens", "Patel", "Quinn", "Reyes", "Silva", "Turner", "Underwood", "Vargas", "Walsh",
    "Young", "Zimmerman", "Brooks", "Chen", "Duarte", "Fischer", "Gomez", "Holt", "Ibarra", "Jordan", "Keller",
    "Lindqvist", "Moreno", "Novak", "Ortega", "Price", "Rossi", "Sato",
]  # fmt: skip

SIDE_EFFECTS = ["nausea_vomiting", "dissociation", "dizziness", "headache", "anxiety_agitation", "sedation"]


@dataclass
class Course:
    """How a demo patient's care unfolds."""

    stage: str  # intake | upcoming | induction | maintenance | relapsing | nonresponder | discharged
    baseline: int  # PHQ-9 total before treatment
    improvement: float  # share of the baseline gone by the end of induction (0-1)
    days_since_last: int = 0  # maintenance: days from the last infusion to today
    boosters: int = 0
    interval: int = 28
    #: a recent item-9 answer above 0 that no clinician has acknowledged yet
    safety_alert: bool = False


class Command(BaseCommand):
    help = "Load the demo clinic (staff of each role, ~40 patients at every stage). Safe to run twice."

    def handle(self, *args, **options) -> None:
        if (
            User.objects.filter(username="admin").exists()
            and Patient.objects.filter(mrn__startswith=MRN_PREFIX).exists()
        ):
            self.stdout.write("Demo clinic already loaded; leaving it as it is.")
            return
        self.rng = random.Random(SEED)
        self.today = timezone.localdate()
        # The change history names this command as the author of every demo record.
        history = pghistory.context(command="seed_demo") if connection.vendor == "postgresql" else nullcontext()
        with transaction.atomic(), history:
            self._load()
            self._clear_historical_alerts()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo clinic loaded: {Patient.objects.count()} patients, "
                f"{InfusionSession.objects.filter(status=SessionStatus.COMPLETED).count()} infusions given."
            )
        )

    # --- set-up -----------------------------------------------------------------

    def _load(self) -> None:
        self.staff = {username: self._user(username, first, last, role) for username, first, last, role in STAFF}
        self.clinicians = [self.staff["clinician"], self.staff["clinician2"], self.staff["nurse"]]
        self.scheduler = self.staff["scheduler"]
        self._closed_days()
        self.protocols = self._protocols()
        courses = self._courses()
        for index, course in enumerate(courses):
            self._patient(index, course)

    def _clear_historical_alerts(self) -> None:
        """Loading months of history raised alerts as if it all happened today. Keep only the
        live ones: unacknowledged safety alerts and alerts from infusions not yet signed."""
        signed = InfusionSession.objects.filter(signed_at__isnull=False).values("pk")
        Notification.objects.filter(
            Q(read_at__isnull=False) | Q(kind=NotificationKind.VITALS_ALERT, subject_id__in=signed)
        ).delete()

    def _user(self, username: str, first: str, last: str, role: Role | None) -> User:
        user, _ = User.objects.get_or_create(
            username=username, defaults={"first_name": first, "last_name": last, "email": f"{username}@demo.clinic"}
        )
        user.set_password(DEMO_PASSWORD)
        if role is None:
            user.is_staff = user.is_superuser = True
        user.save()
        if role is not None:
            user.groups.add(Group.objects.get_or_create(name=role.value)[0])
        return user

    def _closed_days(self) -> None:
        for year in (self.today.year - 1, self.today.year, self.today.year + 1):
            for month, day, reason in ((1, 1, "New Year's Day"), (7, 4, "Independence Day"), (12, 25, "Christmas Day")):
                ClosedDay.objects.get_or_create(date=dt.date(year, month, day), defaults={"reason": reason})

    def _protocols(self) -> dict[str, Protocol]:
        iv, im, nasal, ket, esk = Route.IV, Route.IM, Route.INTRANASAL, Drug.KETAMINE, Drug.ESKETAMINE
        per_kg, fixed = DoseUnit.MG_PER_KG, DoseUnit.MG
        specs = {
            "iv6": ("IV ketamine, 6 infusions twice weekly", 6, 2, iv, ket, per_kg, "0.50", 40),
            "iv8": ("IV ketamine, 8 infusions three times weekly", 8, 3, iv, ket, per_kg, "0.50", 40),
            "iv4": ("IV ketamine, 4 infusions twice weekly", 4, 2, iv, ket, per_kg, "0.75", 40),
            "im6": ("IM ketamine, 6 doses twice weekly", 6, 2, im, ket, per_kg, "0.50", 20),
            "esk": ("Intranasal esketamine 56 mg, twice weekly", 8, 2, nasal, esk, fixed, "56", 120),
        }
        protocols = {}
        for key, (name, count, per_week, route, drug, unit, dose, minutes) in specs.items():
            protocols[key], _ = Protocol.objects.get_or_create(
                name=name,
                defaults={
                    "infusion_count": count,
                    "infusions_per_week": per_week,
                    "route": route,
                    "drug": drug,
                    "dose_unit": unit,
                    "dose": Decimal(dose),
                    "duration_minutes": minutes,
                    "description": "Demo protocol.",
                },
            )
        return protocols

    def _courses(self) -> list[Course]:
        r = self.rng
        courses: list[Course] = []
        # The portal demo patient: a responder with a long maintenance history.
        courses.append(Course("maintenance", 21, 0.75, days_since_last=24, boosters=6, interval=35))
        courses.append(Course("intake", 22, 0, safety_alert=True))
        courses += [Course("intake", r.randint(14, 24), 0) for _ in range(2)]
        courses += [Course("upcoming", r.randint(13, 23), 0) for _ in range(2)]
        courses += [Course("induction", r.randint(14, 25), r.uniform(0.3, 0.8)) for _ in range(8)]
        # Days since the last infusion: not yet due, due soon, due and overdue on a 4-6 week plan.
        for days in (6, 10, 15, 19, 23, 26, 31, 38, 52, 64, 75, 27):
            courses.append(
                Course(
                    "maintenance", r.randint(15, 25), r.uniform(0.65, 0.9), days, r.randint(1, 5), r.choice([28, 35])
                )
            )
        courses += [
            Course("relapsing", r.randint(16, 24), r.uniform(0.55, 0.8), days, r.randint(0, 3), r.choice([35, 42]))
            for days in (20, 27, 33, 40, 48, 30)
        ]
        courses += [Course("nonresponder", r.randint(16, 25), r.uniform(0.0, 0.3)) for _ in range(5)]
        courses += [Course("discharged", r.randint(15, 22), r.uniform(0.6, 0.9)) for _ in range(3)]
        return courses

    # --- one patient ---------------------------------------------------------------

    def _patient(self, index: int, course: Course) -> None:
        r = self.rng
        is_portal_demo = index == 0
        first = "Jordan" if is_portal_demo else FIRST_NAMES[index % len(FIRST_NAMES)]
        last = "Avery" if is_portal_demo else LAST_NAMES[(index * 7) % len(LAST_NAMES)]
        weight = Decimal(str(round(r.uniform(52, 110), 1)))
        patient = Patient.objects.create(
            mrn=f"{MRN_PREFIX}{10001 + index}",
            first_name=first,
            last_name=last,
            date_of_birth=dt.date(r.randint(1958, 2003), r.randint(1, 12), r.randint(1, 28)),
            email=f"{first}.{last}@example.com".lower(),
            phone=f"(555) {r.randint(200, 999)}-{r.randint(1000, 9999)}",
            primary_diagnosis=Diagnosis.TREATMENT_RESISTANT_DEPRESSION
            if is_portal_demo or r.random() < 0.55
            else r.choice([d for d in Diagnosis.values if d != Diagnosis.OTHER]),
            weight_kg=weight,
            weight_recorded_on=self.today - dt.timedelta(days=r.randint(200, 400)),
            status=PatientStatus.INTAKE,
            primary_clinician=self.clinicians[index % len(self.clinicians)],
            emergency_contact_name=f"{r.choice(FIRST_NAMES)} {last}",
            emergency_contact_phone=f"(555) {r.randint(200, 999)}-{r.randint(1000, 9999)}",
        )
        if is_portal_demo:
            user = self._user("patient", first, last, Role.PATIENT)
            patient.user = user
            patient.save(update_fields=["user"])
        self.patient = patient
        self.clinician = patient.primary_clinician
        getattr(self, f"_course_{course.stage}")(course)

    def _course_intake(self, course: Course) -> None:
        if course.safety_alert:
            self._phq9(None, course.baseline, at=timezone.now() - dt.timedelta(hours=2), item_9=1)
            return
        self._phq9(self.today - dt.timedelta(days=self.rng.randint(1, 10)), course.baseline)

    def _course_upcoming(self, course: Course) -> None:
        self._phq9(self.today - dt.timedelta(days=self.rng.randint(1, 6)), course.baseline)
        series_create(
            patient=self.patient,
            protocol=self.protocols["iv6"],
            start_date=self.today + dt.timedelta(days=self.rng.randint(2, 9)),
            created_by=self.scheduler,
        )

    def _course_induction(self, course: Course) -> None:
        protocol = self.protocols[self.rng.choice(["iv6", "iv6", "iv8", "esk", "im6"])]
        start = self.today - dt.timedelta(days=self.rng.randint(0, 16))
        self._induction(protocol, start, course)

    def _course_maintenance(self, course: Course) -> None:
        # Boosters are laid back from the intended last infusion, so today lands in the
        # intended stage; the induction series ends one interval before the first booster.
        last_day = self._open_day_back(self.today - dt.timedelta(days=course.days_since_last))
        booster_days = [last_day]
        for _ in range(course.boosters - 1):
            jitter = dt.timedelta(days=course.interval + self.rng.randint(-3, 3))
            booster_days.insert(0, self._open_day_back(booster_days[0] - jitter))
        if course.boosters:
            start = booster_days[0] - dt.timedelta(days=course.interval + 21)
        else:
            booster_days, start = [], last_day - dt.timedelta(days=17)
        protocol = (
            self.protocols["iv8"] if course.interval == 35 and course.stage == "maintenance" else self.protocols["iv6"]
        )
        self._induction(protocol, start, course)
        maintenance_plan_save(
            patient=self.patient,
            by=self.scheduler,
            protocol=self.protocols["iv6"],
            target_interval_days=course.interval,
            min_interval_days=max(14, course.interval - 14),
            max_interval_days=course.interval + 14,
        )
        low = self._last_total
        relapse_per_week = 1.6 if course.stage == "relapsing" else 0.3
        previous = (
            self.patient.infusion_sessions.filter(status=SessionStatus.COMPLETED).latest("scheduled_at").scheduled_on
        )
        for number, day in enumerate(booster_days):
            weeks = (day - previous).days / 7
            # Relief fades between boosters; the visit's PHQ-9 shows it, the booster resets it.
            before = min(27, round(low + relapse_per_week * weeks + self.rng.uniform(-1, 1.5)))
            session = booster_schedule(
                patient=self.patient, scheduled_at=clinic_datetime(day, dt.time(10)), by=self.scheduler, allow_past=True
            )
            self._phq9_at(session, before, item_9=1 if (self.patient.user_id and number == 2) else 0)
            self._give(session, number_in_series=None)
            previous = day
        weeks_since = (self.today - previous).days / 7
        if course.stage == "relapsing" or weeks_since > 2:
            # A between-visits score, rising for patients whose relief is fading.
            day = previous + dt.timedelta(days=max(1, (self.today - previous).days - self.rng.randint(0, 3)))
            if day <= self.today:
                rise = relapse_per_week * weeks_since + (4 if course.stage == "relapsing" else 0)
                self._phq9(day, min(27, round(low + rise)))
        # Book the next booster for about half the patients who are nearly due.
        if course.days_since_last >= course.interval - 7 and self.rng.random() < 0.5:
            self._book_next_booster()
        self._set_status(PatientStatus.ACTIVE)

    _course_relapsing = _course_maintenance

    def _course_nonresponder(self, course: Course) -> None:
        start = self.today - dt.timedelta(days=self.rng.randint(40, 200))
        self._induction(self.protocols["iv6"], start, course)
        self._set_status(self.rng.choice([PatientStatus.ON_HOLD, PatientStatus.ACTIVE]))

    def _course_discharged(self, course: Course) -> None:
        start = self.today - dt.timedelta(days=self.rng.randint(300, 700))
        self._induction(self.protocols["iv6"], start, course)
        self._phq9(start + dt.timedelta(days=60), max(0, round(course.baseline * (1 - course.improvement))))
        self._set_status(PatientStatus.DISCHARGED)

    # --- building blocks ------------------------------------------------------------

    def _induction(self, protocol: Protocol, start: dt.date, course: Course):
        start = self._open_day_forward(start)
        self._phq9(start - dt.timedelta(days=self.rng.randint(2, 9)), course.baseline)
        series = series_create(
            patient=self.patient, protocol=protocol, start_date=start, created_by=self.scheduler, allow_past=True
        )
        sessions = list(series.sessions.order_by("scheduled_at"))
        missed_one = course.stage == "induction" and self.rng.random() < 0.25
        for number, session in enumerate(sessions, start=1):
            if session.scheduled_on > self.today:
                break
            if session.scheduled_on == self.today:
                if self.rng.random() < 0.4:  # one of today's infusions is under way
                    started = timezone.now() - dt.timedelta(minutes=20)
                    session_start(session=session, by=self.clinician, started_at=started)
                    self._vitals(session, started, number, phases=(VitalPhase.PRE, VitalPhase.DURING))
                break
            if missed_one and number == 2:
                session_mark_missed(session=session, by=self.scheduler, reason="Did not attend")
                sessions.append(self._book_makeup(series, after=sessions[-1].scheduled_on))
                missed_one = False
                continue
            # Improvement accrues over the series (exponential approach to the course's end point).
            # The score before infusion k reflects the k-1 infusions already given.
            done, planned = number - 1, len(sessions) - 1
            share = course.improvement * (1 - math.exp(-done / 2)) / (1 - math.exp(-planned / 2))
            total = round(course.baseline * (1 - share) + self.rng.uniform(-1.5, 1.5))
            self._phq9_at(session, max(0, min(27, total)))
            self._give(session, number_in_series=number)
        series.refresh_from_db()
        last = series.sessions.filter(status=SessionStatus.COMPLETED).order_by("-scheduled_at").first()
        if series.is_complete and last is not None:
            # The follow-up a week after the series: its outcome (response, remission).
            follow_up = last.scheduled_on + dt.timedelta(days=7)
            if follow_up < self.today:
                after = round(course.baseline * (1 - course.improvement) + self.rng.uniform(-1, 1))
                self._phq9(follow_up, max(0, min(27, after)))
        return series

    def _book_makeup(self, series, *, after: dt.date) -> InfusionSession:
        """A make-up infusion at the end of the series, on the first day the rules allow."""
        day = after + dt.timedelta(days=3)
        for _ in range(14):
            day = self._open_day_forward(day)
            try:
                return series_schedule_makeup(
                    series=series, scheduled_at=clinic_datetime(day, dt.time(14)), by=self.scheduler, allow_past=True
                )
            except ValidationError:
                day += dt.timedelta(days=1)
        raise CommandError(f"No day found for a make-up infusion after {after}.")

    def _give(self, session: InfusionSession, *, number_in_series: int | None) -> None:
        """Log an infusion that took place: start, vitals, side effects, end, discharge, sign."""
        r = self.rng
        start = session.scheduled_at + dt.timedelta(minutes=r.randint(0, 20))
        weight = self.patient.weight_kg + Decimal(str(round(r.uniform(-0.8, 0.8), 1)))
        session = session_start(
            session=session, by=self.clinician, started_at=start, weight_kg=weight if session.is_weight_based else None
        )
        self.patient.refresh_from_db(fields=["weight_kg", "weight_recorded_on"])
        self._vitals(session, start, number_in_series or 4)
        for kind in r.sample(SIDE_EFFECTS, k=r.choice([0, 0, 1, 1, 2])):
            session_record_side_effect(
                session=session, by=self.clinician, kind=kind, severity=r.choice(["mild", "mild", "moderate"])
            )
        end = start + dt.timedelta(minutes=session.planned_minutes)
        session_complete(
            session=session,
            by=self.clinician,
            ended_at=end,
            dissociation_scale="cadss6",
            dissociation_score=r.randint(0, 14),
            notes=r.choice(
                ["Tolerated well.", "Mild dissociation, resolved by discharge.", "Calm throughout; music helped."]
            ),
        )
        session_discharge(
            session=session, by=self.clinician, discharged_at=end + dt.timedelta(minutes=r.randint(30, 60))
        )
        session_sign(session=session, by=self.clinician, signed_at=end + dt.timedelta(minutes=75))

    def _vitals(self, session, start, number, phases=(VitalPhase.PRE, VitalPhase.DURING, VitalPhase.DISCHARGE)) -> None:
        r = self.rng
        base_sys, base_dia, base_hr = r.randint(112, 136), r.randint(70, 86), r.randint(64, 84)
        # Blood pressure peaks around 30-40 minutes; severe rises cluster in the first three infusions.
        peak = r.randint(10, 30) + (r.choice([0, 0, 0, 35]) if number <= 3 else 0)
        readings = []
        if VitalPhase.PRE in phases:
            readings.append((VitalPhase.PRE, -5, 0))
        if VitalPhase.DURING in phases:
            readings += [
                (VitalPhase.DURING, 15, peak * 0.6),
                (VitalPhase.DURING, 30, peak),
                (VitalPhase.DURING, 40, peak * 0.8),
            ]
        if VitalPhase.DISCHARGE in phases:
            readings.append((VitalPhase.DISCHARGE, session.planned_minutes + 30, 4))
        for phase, minute, rise in readings:
            taken = start + dt.timedelta(minutes=minute)
            if taken > timezone.now():
                break
            session_record_vitals(
                session=session,
                by=self.clinician,
                phase=phase,
                taken_at=taken,
                systolic=round(base_sys + rise),
                diastolic=round(base_dia + rise * 0.45),
                heart_rate=round(base_hr + rise * 0.5 + r.randint(-3, 3)),
                spo2=r.choice([96, 97, 98, 99]),
            )

    def _phq9_at(self, session: InfusionSession, total: int, item_9: int = 0) -> None:
        self._phq9(None, total, at=session.scheduled_at - dt.timedelta(minutes=20), item_9=item_9)

    def _phq9(
        self, day: dt.date | None, total: int, *, at: dt.datetime | None = None, item_9: int | None = None
    ) -> None:
        r = self.rng
        taken = at or clinic_datetime(day, dt.time(r.randint(8, 17), r.choice([0, 15, 30, 45])))
        if taken > timezone.now():
            return
        if item_9 is None:
            item_9 = 1 if total >= 20 and r.random() < 0.3 else 0
        answers = self._items_for(total, item_9)
        assessment = phq9_record(
            patient=self.patient,
            answers=answers,
            difficulty=(
                "not_difficult" if total < 5 else "somewhat" if total < 15 else r.choice(["very", "extremely"])
            ),
            taken_at=taken,
            entered_by=self.clinician,
        )
        self._last_total = assessment.total
        # Safety events more than a day old were handled at the time; recent ones wait for staff.
        if assessment.has_safety_flag and taken < timezone.now() - dt.timedelta(days=1):
            phq9_acknowledge_safety(
                assessment=assessment,
                by=self.clinician,
                action="Called the patient; safety plan reviewed, no immediate risk.",
            )

    def _items_for(self, total: int, item_9: int) -> dict[str, int]:
        """Nine answers (0-3) adding up to ``total``, with item 9 as given."""
        total = max(item_9, min(24 + item_9, total))  # items 1-8 give at most 24
        items = [0] * 8
        remaining = total - item_9
        while remaining > 0:
            slot = self.rng.randrange(8)
            if items[slot] < 3:
                items[slot] += 1
                remaining -= 1
        return dict(zip(ITEM_FIELDS, [*items, item_9], strict=True))

    def _book_next_booster(self) -> None:
        day = self._open_day_forward(self.today + dt.timedelta(days=self.rng.randint(2, 12)))
        booster_schedule(patient=self.patient, scheduled_at=clinic_datetime(day, dt.time(10)), by=self.scheduler)

    def _set_status(self, status: str) -> None:
        self.patient.status = status
        self.patient.save(update_fields=["status", "updated_at"])

    def _open_day_forward(self, day: dt.date) -> dt.date:
        closed = set(ClosedDay.objects.values_list("date", flat=True))
        while not is_open_day(day, closed):
            day += dt.timedelta(days=1)
        return day

    def _open_day_back(self, day: dt.date) -> dt.date:
        closed = set(ClosedDay.objects.values_list("date", flat=True))
        while not is_open_day(day, closed):
            day -= dt.timedelta(days=1)
        return day
