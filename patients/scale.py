"""A large, realistic clinic built fast, for load tests and benchmarks (``manage.py seed_scale``).

The demo clinic (patients/management/commands/seed_demo.py) goes through the services, one
row at a time; that takes minutes for forty patients. Here the same clinical shape is
simulated in Python and the rows are written with PostgreSQL ``COPY``, a chunk of patients at
a time, so 20,000 patients with five years of care load in under a minute on two cores.

What a patient's record looks like (../shared/CLINICAL.md):

- an intake visit with a baseline PHQ-9, then an induction series planned by the clinic's own
  rules (``plan_series_dates``: the protocol's count, two or three a week on non-consecutive
  open days, closed weekdays and holidays skipped), each infusion its own row; a missed
  infusion is rebooked at the end of the series;
- every infusion given has its dose (mg/kg x the weight used), a PHQ-9 taken before it,
  vital signs before, during (the blood-pressure peak, higher in the first three
  infusions) and before discharge, sometimes side effects, a CADSS-6 score, the discharge
  and a clinician's signature;
- PHQ-9 trajectories: responders lose at least half their baseline by the end of the
  series (some remit, below 5), non-responders stay about flat;
- responders get a maintenance plan (target interval 28-90 days) and boosters over up to
  five years, their intervals lengthening towards the target; relapsers drift up between
  boosters until a symptom trigger brings the next one forward; maintenance ends for
  many (discharged or on hold), and some come back for a second induction;
- some patients are still at intake, some start soon, some are mid-series (sessions booked
  ahead), some stopped their series (discontinued, remaining sessions cancelled);
- item 9 answers above 0 are rare and acknowledged by a clinician, except a handful of
  recent ones still waiting in the safety inbox.

The generator is deterministic for a given seed and day, ids included, except the portal
accounts' (numbered by the auth_user sequence) and the ciphertexts of encrypted fields
(each value has a fresh IV).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX

from clinic.encryption import encrypt
from patients.models import Diagnosis, PatientStatus, PHQ9Source
from sessions.dosing import weight_based_dose_mg
from sessions.models import DissociationScale, SessionKind, SessionStatus, SideEffectKind
from sessions.scheduling import MIN_SPACING_DAYS, clinic_datetime, plan_series_dates
from sessions.vitals import VitalPhase

MRN_PREFIX = "SC-"
FIRST_MRN = 1_000_001
HISTORY_YEARS = 5
#: Patients per chunk: rows of one chunk are generated, then copied, then dropped.
CHUNK_PATIENTS = 1000

#: Logins printed by the command; every scale staff account has the same password.
PORTAL_USERNAME = "scale_patient"
CLINICIAN_USERNAME = "scale_clinician"
SCHEDULER_USERNAME = "scale_scheduler"
CLINICIANS = 20
SCHEDULERS = 5
FIVE_YEAR_NAME = ("Casey", "Whitfield")

FIRST_NAMES = [
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Ethan", "Sophia", "Mason", "Isabella", "Lucas", "Mia", "Logan",
    "Amelia", "James", "Harper", "Benjamin", "Evelyn", "Elijah", "Abigail", "Henry", "Ella", "Owen", "Grace",
    "Samuel", "Chloe", "Jack", "Nora", "Levi", "Riley", "Caleb", "Zoe", "Isaac", "Lily", "Wyatt", "Hannah",
    "Julian", "Aria", "Leo", "Layla", "Ezra", "Maria", "David", "Jennifer", "Michael", "Linda", "Robert",
    "Patricia", "William", "Elizabeth", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles",
    "Karen", "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Sandra", "Steven", "Ashley",
    "Andrew", "Kimberly", "Joshua", "Emily", "Kevin", "Donna", "Brian", "Michelle", "Aisha", "Omar", "Mei",
    "Wei", "Priya", "Arjun", "Fatima", "Yusuf", "Sofia", "Mateo", "Camila", "Diego", "Valentina", "Hiro",
    "Yuki", "Kwame", "Amara", "Tariq", "Leila", "Nikolai", "Ingrid", "Soren", "Freya", "Rafael", "Lucia",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker",
    "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams",
    "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Chen", "Patel", "Kim",
    "Singh", "Khan", "Ali", "Cohen", "Murphy", "O'Brien", "Sullivan", "Kowalski", "Novak", "Rossi", "Bianchi",
    "Schmidt", "Fischer", "Weber", "Dubois", "Laurent", "Silva", "Santos", "Oliveira", "Costa", "Yamamoto",
    "Tanaka", "Sato", "Park", "Choi", "Okafor", "Mensah", "Abebe", "Haddad", "Nasser", "Ivanov", "Petrov",
    "Larsen", "Hansen", "Johansson", "Lindqvist", "Moreno", "Ortega", "Vargas", "Castillo", "Reyes", "Morales",
    "Gutierrez", "Chavez", "Ramos", "Foster", "Bennett",
]  # fmt: skip
STREETS = ["Maple Ave", "Oak St", "Lakeview Dr", "Cedar Ln", "Elm St", "Park Rd", "Hillcrest Ave", "River Rd"]
TOWNS = ["Springfield", "Riverton", "Lakeside", "Fairview", "Georgetown", "Madison", "Clinton", "Franklin"]

DIAGNOSES = [
    (Diagnosis.TREATMENT_RESISTANT_DEPRESSION, 45),
    (Diagnosis.MAJOR_DEPRESSION, 20),
    (Diagnosis.BIPOLAR_DEPRESSION, 7),
    (Diagnosis.PTSD, 10),
    (Diagnosis.ANXIETY, 5),
    (Diagnosis.OCD, 3),
    (Diagnosis.ALCOHOL_USE_DISORDER, 3),
    (Diagnosis.CHRONIC_PAIN, 5),
    (Diagnosis.OTHER, 2),
]

#: The protocols of the demo clinic (same names, so both clinics share them), with how
#: often a new series uses each. The first is the clinic's default.
PROTOCOLS = {
    "iv6": ("IV ketamine, 6 infusions twice weekly", 6, 2, "iv", "ketamine", "mg_per_kg", "0.50", 40, 80),
    "iv8": ("IV ketamine, 8 infusions three times weekly", 8, 3, "iv", "ketamine", "mg_per_kg", "0.50", 40, 8),
    "iv4": ("IV ketamine, 4 infusions twice weekly", 4, 2, "iv", "ketamine", "mg_per_kg", "0.75", 40, 4),
    "im6": ("IM ketamine, 6 doses twice weekly", 6, 2, "im", "ketamine", "mg_per_kg", "0.50", 20, 4),
    "esk": ("Intranasal esketamine 56 mg, twice weekly", 8, 2, "intranasal", "esketamine", "mg", "56", 120, 4),
}

#: Share of patients in each course of care (patient 0 is the five-year patient).
COURSES = [
    ("intake", 0.035),
    ("never_started", 0.015),
    ("upcoming", 0.02),
    ("in_progress", 0.04),
    ("discontinued", 0.06),
    ("nonresponder", 0.17),
    ("responder", 0.66),
]
#: With room for them, at least this many of each course (small test clinics see them all).
COURSE_MINIMUM = {"intake": 1, "upcoming": 1, "in_progress": 3, "discontinued": 1, "nonresponder": 2}

SIDE_EFFECTS = [
    SideEffectKind.NAUSEA_VOMITING,
    SideEffectKind.DISSOCIATION,
    SideEffectKind.DIZZINESS,
    SideEffectKind.HEADACHE,
    SideEffectKind.ANXIETY_AGITATION,
    SideEffectKind.SEDATION,
]
SESSION_NOTES = [
    "Tolerated well.",
    "Mild dissociation, resolved by discharge.",
    "Calm throughout; music helped.",
    "Some nausea at 30 minutes; ondansetron given, settled.",
    "Anxious before starting; reassured, settled after 10 minutes.",
    "Reports better sleep since the last infusion.",
    "Blood pressure peaked at 35 minutes, back to baseline before discharge.",
    "Driven home by partner.",
    "Reports mood lifting for about three weeks after each booster.",
    "Headache after the infusion; resolved with rest.",
]
DISCONTINUED_REASONS = [
    "Patient asked to stop: dissociation too unpleasant.",
    "No improvement after four infusions; other options discussed.",
    "Blood pressure rises at every infusion; stopped on medical advice.",
    "Moved out of the area.",
    "Could not arrange transport home after infusions.",
    "Insurance coverage ended.",
]
SAFETY_ACTIONS = [
    "Called the patient; safety plan reviewed, no immediate risk.",
    "Discussed at the visit; passive thoughts only, safety plan updated.",
    "Spoke with the patient and their partner; crisis line numbers given, follow-up call booked.",
]
OTHER_SIDE_EFFECT_NOTES = ["Tingling in the hands", "Blurred vision for an hour", "Dry mouth"]

DIFFICULTY_BY_BAND = (("not_difficult",), ("somewhat",), ("somewhat", "very"), ("very", "extremely"))


# --- Columns: every row below is a tuple in this order --------------------------------------

USER_COLUMNS = (
    "id", "password", "last_login", "is_superuser", "username", "first_name", "last_name", "email",
    "is_staff", "is_active", "date_joined",
)  # fmt: skip
USER_GROUP_COLUMNS = ("user_id", "group_id")
PATIENT_COLUMNS = (
    "id", "created_at", "updated_at", "mrn", "first_name", "last_name", "date_of_birth", "email", "phone",
    "address", "emergency_contact_name", "emergency_contact_phone", "primary_diagnosis", "weight_kg",
    "weight_recorded_on", "status", "primary_clinician_id", "accepts_email_reminders", "user_id",
)  # fmt: skip
PHQ9_COLUMNS = (
    "id", "created_at", "updated_at", "patient_id", "taken_at",
    "item_1", "item_2", "item_3", "item_4", "item_5", "item_6", "item_7", "item_8", "item_9",
    "difficulty", "source", "entered_by_id", "safety_acknowledged_at", "safety_acknowledged_by_id", "safety_action",
)  # fmt: skip
SERIES_COLUMNS = (
    "id", "created_at", "updated_at", "patient_id", "protocol_id", "planned_infusions", "infusions_per_week",
    "start_date", "discontinued_at", "discontinued_reason", "created_by_id",
)  # fmt: skip
SESSION_COLUMNS = (
    "id", "created_at", "updated_at", "patient_id", "series_id", "kind", "scheduled_at", "scheduled_on", "status",
    "route", "drug", "dose_mg_per_kg", "weight_kg_used", "dose_mg", "planned_minutes", "started_at", "ended_at",
    "administered_by_id", "dissociation_scale", "dissociation_score", "discharged_at", "discharged_by_id", "notes",
    "status_reason", "signed_at", "signed_by_id",
)  # fmt: skip
VITALS_COLUMNS = (
    "id", "created_at", "updated_at", "session_id", "taken_at", "phase", "systolic", "diastolic", "heart_rate",
    "spo2", "recorded_by_id",
)  # fmt: skip
SIDE_EFFECT_COLUMNS = ("id", "created_at", "updated_at", "session_id", "kind", "severity", "note")
PLAN_COLUMNS = (
    "id", "created_at", "updated_at", "patient_id", "protocol_id", "target_interval_days", "min_interval_days",
    "max_interval_days", "trigger_phq9_threshold", "trigger_phq9_rise", "is_active", "notes",
)  # fmt: skip

#: The tables a chunk fills, in an order the foreign keys accept (parents first).
TABLES = (
    ("users", "auth_user", USER_COLUMNS),
    ("user_groups", "auth_user_groups", USER_GROUP_COLUMNS),
    ("patients", "patients_patient", PATIENT_COLUMNS),
    ("phq9", "patients_phq9assessment", PHQ9_COLUMNS),
    ("series", "infusions_inductionseries", SERIES_COLUMNS),
    ("sessions", "infusions_infusionsession", SESSION_COLUMNS),
    ("vitals", "infusions_vitalsignreading", VITALS_COLUMNS),
    ("side_effects", "infusions_sideeffect", SIDE_EFFECT_COLUMNS),
    ("plans", "maintenance_maintenanceplan", PLAN_COLUMNS),
)
SIGNED_AT = SESSION_COLUMNS.index("signed_at")
SIGNED_BY = SESSION_COLUMNS.index("signed_by_id")
UPDATED_AT = SESSION_COLUMNS.index("updated_at")
DISCHARGED_AT = SESSION_COLUMNS.index("discharged_at")


# --- What the generator is given -----------------------------------------------------------


@dataclass(frozen=True)
class ProtocolSpec:
    key: str
    id: uuid.UUID
    count: int
    per_week: int
    route: str
    drug: str
    weight_based: bool
    dose: Decimal
    minutes: int


@dataclass
class Setup:
    """The clinic the patients join: staff, protocols, holidays, groups, the fixed logins."""

    today: dt.date
    now: dt.datetime
    clinicians: list[int]
    schedulers: list[int]
    protocols: dict[str, ProtocolSpec]
    closed_dates: set[dt.date]
    patient_group_id: int
    five_year_user_id: int
    #: ``reserve(n)``: n fresh auth_user ids from the table's sequence.
    reserve_user_ids: Callable[[int], list[int]]


@dataclass
class Chunk:
    rows: dict[str, list[tuple]] = field(default_factory=lambda: {name: [] for name, _, _ in TABLES})
    #: Recent item-9 answers nobody has acknowledged: the command raises their safety alerts.
    open_safety_alerts: list[uuid.UUID] = field(default_factory=list)


@dataclass
class Stats:
    courses: Counter = field(default_factory=Counter)
    encrypted_values: int = 0
    encrypt_seconds: float = 0.0
    five_year_patient: tuple[str, str] | None = None  # (mrn, full name)


@dataclass
class _Outcome:
    """Where an induction series takes a patient's PHQ-9: ``final`` a week after its end."""

    baseline: int
    final: int


@dataclass
class _Episode:
    last_day: dt.date | None  # the last infusion given
    complete: bool  # every planned infusion given
    low: int  # the lowest recent score (post-induction low for responders)


class _Patient:
    """The state of one patient while their history is simulated."""

    __slots__ = (
        "clinician",
        "email",
        "first",
        "id",
        "index",
        "joined_at",
        "last",
        "last_change",
        "user_id",
        "weight_day",
        "weight_tenths",
    )


def course_plan(patients: int, rng: random.Random) -> list[str]:
    """The course of care of patients 1..n-1, in a shuffled order (patient 0 is the five-year one)."""
    rest = patients - 1
    counts = {name: int(share * rest) for name, share in COURSES}
    if rest >= 20:
        for name, minimum in COURSE_MINIMUM.items():
            counts[name] = max(counts[name], minimum)
    counts["responder"] = rest - sum(count for name, count in counts.items() if name != "responder")
    plan = [name for name, count in counts.items() for _ in range(count)]
    rng.shuffle(plan)
    return plan


def _items_pool(rng: random.Random) -> list[list[tuple[int, ...]]]:
    """For each sum 0-24, a few ways items 1-8 (0-3 each) add up to it; mood and energy items
    carry more of the score than the psychomotor one, as in real answers."""
    weights = [1.4, 1.5, 1.2, 1.4, 0.9, 1.1, 0.9, 0.6]
    pool = []
    for total in range(25):
        ways = set()
        for _ in range(60):
            items = [0] * 8
            remaining = total
            while remaining:
                slot = rng.choices(range(8), weights)[0]
                if items[slot] < 3:
                    items[slot] += 1
                    remaining -= 1
            ways.add(tuple(items))
            if len(ways) >= 16:
                break
        pool.append(sorted(ways))
    return pool


class ClinicGenerator:
    """Simulates each patient's care and yields the rows, a chunk of patients at a time."""

    def __init__(self, setup: Setup, *, patients: int, seed: int, stats: Stats):
        self.s = setup
        self.n = patients
        self.stats = stats
        self.rng = random.Random(seed)
        self.today = setup.today
        self.now = setup.now
        self.horizon = _years_before(self.today, HISTORY_YEARS)
        self.closed_weekdays = frozenset(settings.CLINIC_CLOSED_WEEKDAYS)
        self._midnight: dict[dt.date, dt.datetime] = {}
        self._open_cache: dict[dt.date, bool] = {}
        self._doses: dict[tuple[Decimal, int], tuple[Decimal, Decimal]] = {}
        self.items = _items_pool(self.rng)
        self.courses = course_plan(patients, self.rng)
        # A handful of recent item-9 answers stay unacknowledged (the safety inbox).
        self.open_alerts_left = max(3, min(12, patients // 2000))
        self.protocol_keys = list(PROTOCOLS)
        self.protocol_weights = [spec[-1] for spec in PROTOCOLS.values()]
        self._user_ids: list[int] = []
        self._alerted: set[int] = set()

    # --- small helpers -------------------------------------------------------------------

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def encrypt(self, value: str) -> str:
        started = time.perf_counter()
        token = encrypt(value)
        self.stats.encrypt_seconds += time.perf_counter() - started
        self.stats.encrypted_values += 1
        return token

    def at(self, day: dt.date, minutes: float) -> dt.datetime:
        """``minutes`` after local midnight of ``day``, aware, in the clinic's time zone."""
        midnight = self._midnight.get(day)
        if midnight is None:
            midnight = self._midnight[day] = clinic_datetime(day, dt.time(0))
        # Aware + timedelta is wall-clock arithmetic: 10:00 stays 10:00 on DST days.
        return midnight + dt.timedelta(minutes=minutes)

    def is_open(self, day: dt.date) -> bool:
        open_ = self._open_cache.get(day)
        if open_ is None:
            open_ = self._open_cache[day] = day.weekday() not in self.closed_weekdays and day not in self.s.closed_dates
        return open_

    def closed(self, day: dt.date) -> bool:
        return not self.is_open(day)

    def open_on_or_after(self, day: dt.date) -> dt.date:
        while not self.is_open(day):
            day += dt.timedelta(days=1)
        return day

    def open_on_or_before(self, day: dt.date) -> dt.date:
        while not self.is_open(day):
            day -= dt.timedelta(days=1)
        return day

    def slot(self) -> int:
        """An appointment time (minutes after midnight): 8:00 to 15:00, on the half hour."""
        return 480 + 30 * self.rng.randint(0, 14)

    def dose(self, spec: ProtocolSpec, weight_tenths: int) -> tuple[Decimal | None, Decimal | None, Decimal]:
        """(mg/kg, weight used, mg) of an infusion given at ``weight_tenths`` (0.1 kg)."""
        if not spec.weight_based:
            return None, None, spec.dose
        key = (spec.dose, weight_tenths)
        cached = self._doses.get(key)
        if cached is None:
            weight = Decimal(weight_tenths).scaleb(-1)
            cached = self._doses[key] = (weight, weight_based_dose_mg(mg_per_kg=spec.dose, weight_kg=weight))
        return spec.dose, cached[0], cached[1]

    def user_id(self) -> int:
        if not self._user_ids:
            self._user_ids = self.s.reserve_user_ids(200)
        return self._user_ids.pop(0)

    def other_clinician(self, p: _Patient) -> int:
        """Who gives an infusion: usually the patient's own clinician."""
        return p.clinician if self.rng.random() < 0.75 else self.rng.choice(self.s.clinicians)

    # --- the chunks --------------------------------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        for start in range(0, self.n, CHUNK_PATIENTS):
            chunk = Chunk()
            self.chunk = chunk
            self.rows = chunk.rows
            for index in range(start, min(self.n, start + CHUNK_PATIENTS)):
                self.patient(index)
            yield chunk

    # --- one patient -------------------------------------------------------------------------

    def patient(self, index: int) -> None:
        r = self.rng
        five_year = index == 0
        course = "five_year" if five_year else self.courses[index - 1]
        self.stats.courses[course] += 1
        p = _Patient()
        p.id = self.uuid()
        p.index = index
        p.first, p.last = FIVE_YEAR_NAME if five_year else (r.choice(FIRST_NAMES), r.choice(LAST_NAMES))
        mrn = f"{MRN_PREFIX}{FIRST_MRN + index}"
        p.email = f"{p.first}.{p.last}.{FIRST_MRN + index}@example.com".lower().replace("'", "")
        p.weight_tenths = max(450, min(1600, round(r.gauss(800, 170))))
        p.clinician = r.choice(self.s.clinicians)
        p.user_id = None
        p.joined_at = None
        status = PatientStatus.ACTIVE

        # When the patient first came, by course; the rest of their history follows from it.
        if five_year:
            intake = self.horizon
        elif course == "intake":
            intake = self.today - dt.timedelta(days=r.randint(0, 45))
            status = PatientStatus.INTAKE
        elif course == "never_started":
            # Assessed, never treated, closed since.
            intake = self.today - dt.timedelta(days=r.randint(60, 5 * 365 - 10))
            status = PatientStatus.DISCHARGED
        elif course == "upcoming":
            intake = self.today - dt.timedelta(days=r.randint(1, 10))
        elif course == "in_progress":
            # Started within the series' own length: some infusions given, the rest booked.
            protocol = self.pick_protocol()
            length = (protocol.count - 1) * 7 // protocol.per_week
            start = self.open_on_or_before(self.today - dt.timedelta(days=r.randint(1, max(1, length - 3))))
            intake = start - dt.timedelta(days=r.randint(3, 10))
        else:
            span = (self.today - self.horizon).days - 60
            intake = self.horizon + dt.timedelta(days=r.randint(5, max(6, span)))
        intake = min(self.open_on_or_before(intake), self.today)
        created_at = min(self.at(intake, self.slot()), self.now)
        p.weight_day = intake
        p.last_change = created_at

        # A portal account for about a third of the patients who have been treated.
        if five_year or (course not in ("intake", "never_started") and r.random() < 0.35):
            p.user_id = self.s.five_year_user_id if five_year else self.user_id()
            p.joined_at = (
                five_year_joined_at(self.today)
                if five_year
                else min(created_at + dt.timedelta(days=r.randint(1, 30), minutes=r.randint(0, 600)), self.now)
            )
            if not five_year:
                self._portal_user(p)

        # The first baseline; its level sets how ill the patient is.
        baseline = r.choices(range(12, 27), weights=[2, 3, 4, 6, 7, 8, 9, 9, 8, 7, 6, 5, 4, 3, 2])[0]
        taken_at = min(created_at + dt.timedelta(minutes=15), self.now)
        self.phq9(p, taken_at, baseline + r.randint(-2, 1), by=p.clinician)

        if course in ("intake", "never_started"):
            pass
        elif course == "upcoming":
            start = self.open_on_or_after(self.today + dt.timedelta(days=r.randint(1, 14)))
            self.induction(p, start=start, planned_on=intake, protocol=self.pick_protocol(), outcome=None)
        elif course == "in_progress":
            outcome = self.outcome(baseline, r.choice(["responder", "responder", "nonresponder"]))
            self.induction(p, start=start, planned_on=intake, protocol=protocol, outcome=outcome)
        elif course == "discontinued":
            start = self.open_on_or_after(intake + dt.timedelta(days=r.randint(3, 12)))
            outcome = self.outcome(baseline, "nonresponder")
            self.induction(
                p, start=start, planned_on=intake, protocol=self.pick_protocol(), outcome=outcome,
                stop_after=r.randint(1, 4),
            )  # fmt: skip
            status = r.choice([PatientStatus.DISCHARGED, PatientStatus.DISCHARGED, PatientStatus.ON_HOLD])
        elif course == "nonresponder":
            status = self.nonresponder(p, intake, baseline)
        else:
            status = self.responder(p, intake, baseline, five_year=five_year)

        self.patient_row(p, mrn=mrn, created_at=created_at, status=status, five_year=five_year)
        if five_year:
            self.stats.five_year_patient = (mrn, f"{p.first} {p.last}")

    def pick_protocol(self) -> ProtocolSpec:
        key = self.rng.choices(self.protocol_keys, self.protocol_weights)[0]
        return self.s.protocols[key]

    def outcome(self, baseline: int, kind: str) -> _Outcome:
        """Where the series leaves the PHQ-9: responders keep at most half the baseline
        (remitters below 5), non-responders lose under a third of it."""
        r = self.rng
        if kind == "remitter":
            final = r.randint(0, 4)
        elif kind == "responder":
            final = min(baseline // 2, max(5, round(baseline * r.uniform(0.2, 0.5))))
        else:
            final = min(27, max(baseline // 2 + 1, round(baseline * r.uniform(0.68, 1.05))))
        return _Outcome(baseline, final)

    def nonresponder(self, p: _Patient, intake: dt.date, baseline: int) -> str:
        r = self.rng
        start = self.open_on_or_after(intake + dt.timedelta(days=r.randint(3, 12)))
        episode = self.induction(
            p,
            start=start,
            planned_on=intake,
            protocol=self.pick_protocol(),
            outcome=self.outcome(baseline, "nonresponder"),
        )
        # Some try again with three infusions a week; a few respond the second time.
        if episode.complete and r.random() < 0.12:
            restart = self.open_on_or_after(episode.last_day + dt.timedelta(days=r.randint(21, 60)))
            if restart < self.today - dt.timedelta(days=40):
                second = self.outcome(baseline, "responder" if r.random() < 0.4 else "nonresponder")
                intake2 = self.open_on_or_before(restart - dt.timedelta(days=r.randint(2, 9)))
                self.phq9(p, self.at(intake2, self.slot()), second.baseline, by=p.clinician)
                episode = self.induction(
                    p, start=restart, planned_on=intake2, protocol=self.s.protocols["iv8"], outcome=second
                )
                if episode.complete and second.final <= second.baseline // 2:
                    return self.maintenance_course(p, episode, relapsing=False)
        return r.choices([PatientStatus.DISCHARGED, PatientStatus.ON_HOLD, PatientStatus.ACTIVE], [55, 30, 15])[0]

    def responder(self, p: _Patient, intake: dt.date, baseline: int, *, five_year: bool = False) -> str:
        r = self.rng
        start = self.open_on_or_after(intake + dt.timedelta(days=4 if five_year else r.randint(3, 12)))
        remits = five_year or r.random() < 0.4
        outcome = self.outcome(baseline, "remitter" if remits else "responder")
        protocol = self.s.protocols["iv6"] if five_year else self.pick_protocol()
        episode = self.induction(p, start=start, planned_on=intake, protocol=protocol, outcome=outcome)
        if not five_year and r.random() < 0.15:
            return PatientStatus.DISCHARGED  # relief lasted; no maintenance wanted
        return self.maintenance_course(p, episode, relapsing=not five_year and r.random() < 0.2, five_year=five_year)

    # --- induction ---------------------------------------------------------------------------

    def induction(
        self,
        p: _Patient,
        *,
        start: dt.date,
        planned_on: dt.date,
        protocol: ProtocolSpec,
        outcome: _Outcome | None,
        stop_after: int | None = None,
    ) -> _Episode:
        """One induction series from ``start``: sessions given up to today, the rest booked."""
        r = self.rng
        dates = plan_series_dates(
            start=start, count=protocol.count, per_week=protocol.per_week, unavailable=self.closed
        )
        series_id = self.uuid()
        scheduler = r.choice(self.s.schedulers)
        created_at = min(self.at(planned_on, self.slot() + 40), self.now)
        slot = self.slot()
        spacing = dt.timedelta(days=MIN_SPACING_DAYS[protocol.per_week] + 1)
        completed, last_day, discontinued_at = 0, None, None
        low = outcome.baseline if outcome else 27
        n = protocol.count
        index = 0
        while index < len(dates):
            day = dates[index]
            index += 1
            session_id = self.uuid()
            scheduled_at = self.at(day, slot)
            if discontinued_at is not None:
                self.session_row(
                    session_id, p, series_id, SessionKind.INDUCTION, day, scheduled_at, protocol,
                    status=SessionStatus.CANCELLED, created_at=created_at, updated_at=discontinued_at,
                    reason="Series discontinued",
                )  # fmt: skip
                continue
            if day < self.today and outcome is not None and r.random() < 0.03:
                # Did not attend: rebooked at the end of the series.
                self.session_row(
                    session_id, p, series_id, SessionKind.INDUCTION, day, scheduled_at, protocol,
                    status=SessionStatus.MISSED, created_at=created_at, updated_at=self.at(day, 17 * 60),
                    reason=r.choice(["Did not attend", "Unwell on the day", "No transport home"]),
                )  # fmt: skip
                dates.append(self.open_on_or_after(dates[-1] + spacing))
                continue
            score = None
            if outcome is not None:
                # The score before infusion k reflects the k - 1 already given.
                share = (1 - math.exp(-completed / 2)) / (1 - math.exp(-n / 2))
                score = round(outcome.baseline - (outcome.baseline - outcome.final) * share)
                if completed:
                    score += r.randint(-1, 1)
            given = outcome is not None and self.give(
                p, session_id, series_id, SessionKind.INDUCTION, day, scheduled_at, protocol,
                number=completed + 1, created_at=created_at, score=score,
            )  # fmt: skip
            if not given:
                self.session_row(
                    session_id, p, series_id, SessionKind.INDUCTION, day, scheduled_at, protocol,
                    status=SessionStatus.SCHEDULED, created_at=created_at, updated_at=created_at,
                )  # fmt: skip
                continue
            completed += 1
            last_day = day
            low = min(low, score)
            if stop_after is not None and completed >= stop_after:
                # Stopped the next day, before the next infusion; the rest are cancelled.
                discontinued_at = min(self.at(day + dt.timedelta(days=1), r.randint(540, 1020)), self.now)
        reason = self.encrypt(r.choice(DISCONTINUED_REASONS)) if discontinued_at else ""
        self.rows["series"].append(
            (
                series_id, created_at, discontinued_at or created_at, p.id, protocol.id, protocol.count,
                protocol.per_week, dates[0], discontinued_at, reason, scheduler,
            )
        )  # fmt: skip
        if outcome is not None and completed == n and last_day is not None:
            # The follow-up a week after the series: its outcome (response, remission).
            follow_up = self.at(last_day + dt.timedelta(days=7), self.slot())
            if self.phq9(p, follow_up, outcome.final, by=p.clinician, portal=True):
                low = outcome.final
        return _Episode(last_day=last_day, complete=completed >= n, low=low)

    # --- maintenance -------------------------------------------------------------------------

    def maintenance_course(self, p: _Patient, episode: _Episode, *, relapsing: bool, five_year: bool = False) -> str:
        """A plan and boosters after a response; maintenance may end, and a relapse may
        bring the patient back for a second induction."""
        r = self.rng
        if not episode.complete:
            return PatientStatus.ACTIVE
        target = 42 if five_year else r.choices([28, 35, 42, 56, 63, 70, 84, 90], [10, 14, 18, 18, 10, 10, 10, 10])[0]
        min_interval = 21 if five_year else r.choice([None, 14, 21])
        max_interval = 56 if five_year else r.choice([None, target + 14, min(365, target + 28)])
        threshold, rise = (None, None) if r.random() < 0.05 else (10, 5)
        if threshold is None and r.random() < 0.5:
            threshold = 12
        if threshold is not None and episode.low >= threshold - 2:
            # A response that leaves the score near the usual threshold: the clinic raises it
            # for this patient, or it would fire at every visit.
            threshold = min(27, episode.low + 5)
        protocol = self.s.protocols["esk" if r.random() < 0.03 else "iv6"]
        plan_created = min(self.at(episode.last_day + dt.timedelta(days=r.randint(1, 7)), self.slot()), self.now)
        # How long this patient stays in maintenance (years, for some); ongoing if past today.
        stays = 10_000 if five_year else int(r.expovariate(1 / 600))
        until = min(self.today, episode.last_day + dt.timedelta(days=stays))
        ongoing = until >= self.today - dt.timedelta(days=30)
        plan = {"target": target, "min": min_interval, "max": max_interval, "threshold": threshold, "rise": rise}
        boosters_until, book_next = until, ongoing and (five_year or r.random() < 0.5)
        if ongoing and not five_year and r.random() < 0.08:
            # Lost to follow-up: stopped coming weeks ago, plan still in force (overdue).
            boosters_until, book_next = self.today - dt.timedelta(days=r.randint(20, 150)), False
        elif ongoing:
            boosters_until = self.today
        last = self.boosters(
            p, episode, plan=plan, protocol=protocol, relapsing=relapsing, until=boosters_until,
            book_next=book_next, always_book=five_year,
        )  # fmt: skip
        status, active, updated = PatientStatus.ACTIVE, True, plan_created
        if not ongoing:
            active = False
            updated = min(self.at(last + dt.timedelta(days=r.randint(20, 80)), 12 * 60), self.now)
            status = r.choices([PatientStatus.DISCHARGED, PatientStatus.ON_HOLD], [70, 30])[0]
            # Some come back months later, as ill as before: a new episode and a new baseline.
            back = last + dt.timedelta(days=r.randint(90, 500))
            if r.random() < 0.2 and back < self.today - dt.timedelta(days=45):
                baseline = r.randint(14, 24)
                self.phq9(p, self.at(self.open_on_or_before(back), self.slot()), baseline, by=p.clinician)
                start = self.open_on_or_after(back + dt.timedelta(days=r.randint(3, 10)))
                outcome = self.outcome(baseline, "responder" if r.random() < 0.75 else "nonresponder")
                second = self.induction(
                    p, start=start, planned_on=back, protocol=self.s.protocols["iv6"], outcome=outcome
                )
                if second.complete and outcome.final <= outcome.baseline // 2:
                    self.boosters(
                        p, second, plan=plan, protocol=protocol, relapsing=False, until=self.today,
                        book_next=r.random() < 0.5,
                    )  # fmt: skip
                    status, active = PatientStatus.ACTIVE, True
                else:
                    status = PatientStatus.ON_HOLD
                updated = min(self.at(back, 12 * 60), self.now)
        notes = self.encrypt("Prefers morning appointments.") if r.random() < 0.1 else ""
        self.rows["plans"].append(
            (
                self.uuid(), plan_created, max(updated, plan_created), p.id, protocol.id, target, min_interval,
                max_interval, threshold, rise, active, notes,
            )
        )  # fmt: skip
        return status

    def boosters(
        self,
        p: _Patient,
        episode: _Episode,
        *,
        plan: dict,
        protocol: ProtocolSpec,
        relapsing: bool,
        until: dt.date,
        book_next: bool,
        always_book: bool = False,
    ) -> dt.date:
        """Boosters from the end of an induction until ``until``; returns the last infusion day.

        Intervals start at four or five weeks and lengthen towards the plan's target. Between
        boosters the PHQ-9 drifts up from the post-induction low: slowly for most, fast for
        relapsers, whose rising score (a portal or phone check) trips a trigger that brings
        the booster forward, never before the plan's minimum interval.
        """
        r = self.rng
        last = episode.last_day
        low = episode.low
        floor = max(episode.low, 0)
        # Points a week: relapsers lose their relief within weeks; for the others the plan's
        # interval is right, their score rising a point or two by the time it is due.
        drift = r.uniform(0.9, 1.8) if relapsing else r.uniform(0.5, 2.5) / (plan["target"] / 7)
        interval = min(plan["target"], r.choice([28, 35]))
        earliest_gap = max(plan["min"] or 14, 14)
        threshold, rise = plan["threshold"], plan["rise"]
        given = 0
        while True:
            gap = interval + r.randint(-3, 3)
            if r.random() < 0.1:
                gap += r.randint(5, 20)  # came late
            check_day = None
            if relapsing or r.random() < 0.3:
                # When the rising score would trip a trigger (or just a routine check-in).
                limits = []
                if threshold is not None and threshold > low:
                    limits.append((threshold - low) / drift * 7)
                if rise is not None:
                    limits.append(rise / drift * 7)
                trip = math.ceil(min(limits)) + 1 if limits else gap
                if relapsing and trip < gap:
                    check_day = last + dt.timedelta(days=max(trip, 7))
                    gap = max(earliest_gap, trip + r.randint(1, 5))
                elif not relapsing:
                    check_day = last + dt.timedelta(days=r.randint(10, max(11, gap - 5)))
            day = self.open_on_or_after(last + dt.timedelta(days=max(gap, earliest_gap)))
            if check_day is not None and check_day < day and check_day <= self.today:
                weeks = (check_day - last).days / 7
                self.phq9(
                    p, self.at(check_day, r.randint(420, 1260)), round(low + drift * weeks), by=p.clinician, portal=True
                )
            if day > until:
                break
            slot = self.slot()
            scheduled_at = self.at(day, slot)
            created_at = min(self.at(max(last, day - dt.timedelta(days=r.randint(5, 25))), slot - 60), self.now)
            if r.random() < 0.02:
                # Missed, and booked again a few days later.
                self.session_row(
                    self.uuid(), p, None, SessionKind.BOOSTER, day, scheduled_at, protocol,
                    status=SessionStatus.MISSED, created_at=created_at, updated_at=self.at(day, 17 * 60),
                    reason="Did not attend",
                )  # fmt: skip
                day = self.open_on_or_after(day + dt.timedelta(days=r.randint(2, 7)))
                if day > until:
                    break
                scheduled_at = self.at(day, slot)
            weeks = (day - last).days / 7
            score = round(low + drift * weeks + r.uniform(-0.5, 1))
            session_id = self.uuid()
            if not self.give(
                p, session_id, None, SessionKind.BOOSTER, day, scheduled_at, protocol,
                number=None, created_at=created_at, score=score,
            ):  # fmt: skip
                # Today, not given yet: booked.
                self.session_row(
                    session_id, p, None, SessionKind.BOOSTER, day, scheduled_at, protocol,
                    status=SessionStatus.SCHEDULED, created_at=created_at, updated_at=created_at,
                )  # fmt: skip
                return last
            last = day
            given += 1
            # Relief after each booster returns close to the low, which wanders a little.
            low = max(floor, min(floor + 1, low + r.randint(-1, 1)))
            if given % 3 == 0:
                interval = min(plan["target"], interval + 7)
        if book_next:
            due = last + dt.timedelta(days=interval)
            if always_book or due <= self.today + dt.timedelta(days=21):
                day = self.open_on_or_after(max(due, self.today + dt.timedelta(days=1)))
                created_at = min(max(self.now - dt.timedelta(days=r.randint(1, 10)), self.at(last, 18 * 60)), self.now)
                self.session_row(
                    self.uuid(), p, None, SessionKind.BOOSTER, day, self.at(day, self.slot()), protocol,
                    status=SessionStatus.SCHEDULED, created_at=created_at, updated_at=created_at,
                )  # fmt: skip
        return last

    # --- one infusion ------------------------------------------------------------------------

    def give(
        self,
        p: _Patient,
        session_id: uuid.UUID,
        series_id: uuid.UUID | None,
        kind: str,
        day: dt.date,
        scheduled_at: dt.datetime,
        spec: ProtocolSpec,
        *,
        number: int | None,
        created_at: dt.datetime,
        score: int | None,
    ) -> bool:
        """Log an infusion that took place (PHQ-9, dose, vitals, side effects, end, discharge,
        signature); False, and nothing written, if it would not have been discharged by now."""
        r = self.rng
        started = scheduled_at + dt.timedelta(minutes=r.randint(0, 20))
        ended = started + dt.timedelta(minutes=spec.minutes + r.randint(-1, 5))
        discharged = ended + dt.timedelta(minutes=r.randint(15, 40) if spec.minutes >= 120 else r.randint(30, 70))
        if discharged > self.now:
            return False
        signed = discharged + dt.timedelta(minutes=r.randint(5, 90))
        signed_at, signed_by = (signed, None) if signed <= self.now else (None, None)
        clinician = self.other_clinician(p)
        if signed_at is not None:
            signed_by = clinician
        # The weight is confirmed at each weight-based infusion; a change is recorded.
        if spec.weight_based and r.random() < 0.3:
            p.weight_tenths = max(450, min(1600, p.weight_tenths + r.randint(-12, 12)))
            p.weight_day = day
        mg_per_kg, weight, mg = self.dose(spec, p.weight_tenths)
        early = number is not None and number <= 3
        if r.random() < 0.9:
            scale = DissociationScale.CADSS6
            dissociation = max(0, min(24, round(r.gauss(9 if early else 5, 3))))
        else:
            scale, dissociation = "", None
        notes = self.encrypt(r.choice(SESSION_NOTES)) if r.random() < 0.25 else ""
        self.rows["sessions"].append(
            (
                session_id, created_at, signed_at or discharged, p.id, series_id, kind, scheduled_at, day,
                SessionStatus.COMPLETED, spec.route, spec.drug, mg_per_kg, weight, mg, spec.minutes, started, ended,
                clinician, scale, dissociation, discharged, clinician, notes, "", signed_at, signed_by,
            )
        )  # fmt: skip
        if score is not None:
            self.phq9(p, scheduled_at - dt.timedelta(minutes=r.randint(10, 30)), score, by=clinician, visit=True)

        # Vital signs: before, at the blood-pressure peak, before discharge.
        base_sys, base_dia, base_hr = r.randint(108, 138), r.randint(66, 88), r.randint(60, 86)
        peak = r.randint(8, 28) + (r.randint(25, 45) if early and r.random() < 0.1 else 0)
        readings = (
            (VitalPhase.PRE, started - dt.timedelta(minutes=r.randint(3, 10)), 0),
            (VitalPhase.DURING, started + dt.timedelta(minutes=min(spec.minutes, r.randint(30, 40))), peak),
            (VitalPhase.DISCHARGE, discharged - dt.timedelta(minutes=r.randint(2, 10)), r.randint(0, 6)),
        )
        vitals = self.rows["vitals"]
        for phase, taken_at, rise in readings:
            vitals.append(
                (
                    self.uuid(), taken_at, taken_at, session_id, taken_at, phase, base_sys + rise,
                    base_dia + round(rise * 0.45), base_hr + round(rise * 0.4) + r.randint(-3, 3),
                    r.choice((95, 96, 97, 97, 98, 98, 99)), clinician,
                )
            )  # fmt: skip

        # Side effects: more often in the first infusions of a series.
        effects = r.choices((0, 1, 2), (50, 35, 15) if early else (65, 28, 7))[0]
        kinds = r.sample(SIDE_EFFECTS, effects)
        if base_sys + peak >= 160:
            kinds.append(SideEffectKind.HYPERTENSION)
        if r.random() < 0.004:
            kinds.append(SideEffectKind.OTHER)
        for effect in kinds:
            note = self.encrypt(r.choice(OTHER_SIDE_EFFECT_NOTES)) if effect == SideEffectKind.OTHER else ""
            severity = r.choices(("mild", "moderate", "severe"), (70, 25, 5))[0]
            noted = started + dt.timedelta(minutes=r.randint(10, spec.minutes))
            self.rows["side_effects"].append((self.uuid(), noted, noted, session_id, effect, severity, note))
        p.last_change = max(p.last_change, signed_at or discharged)
        return True

    # --- rows ----------------------------------------------------------------------------------

    def session_row(
        self,
        session_id: uuid.UUID,
        p: _Patient,
        series_id: uuid.UUID | None,
        kind: str,
        day: dt.date,
        scheduled_at: dt.datetime,
        spec: ProtocolSpec,
        *,
        status: str,
        created_at: dt.datetime,
        updated_at: dt.datetime,
        reason: str = "",
    ) -> None:
        """A session that was not given: booked ahead, missed or cancelled (planned dose only)."""
        mg_per_kg, mg = (spec.dose, None) if spec.weight_based else (None, spec.dose)
        self.rows["sessions"].append(
            (
                session_id, created_at, min(updated_at, self.now), p.id, series_id, kind, scheduled_at, day, status,
                spec.route, spec.drug, mg_per_kg, None, mg, spec.minutes, None, None, None, "", None, None, None, "",
                self.encrypt(reason) if reason else "", None, None,
            )
        )  # fmt: skip

    def phq9(
        self,
        p: _Patient,
        taken_at: dt.datetime,
        total: int,
        *,
        by: int,
        portal: bool = False,
        visit: bool = False,
    ) -> bool:
        """A PHQ-9 of ``total`` (0-27); ``portal``: entered by the patient if they have an
        account by then. Nothing is written for a time still in the future."""
        if taken_at > self.now:
            return False
        r = self.rng
        total = max(0, min(27, total))
        item_9 = 0
        unacknowledged = False
        if (
            visit
            and self.open_alerts_left
            and p.index not in self._alerted
            and self.course_of(p) == "in_progress"
            and taken_at > self.now - dt.timedelta(days=7)
        ):
            # One of the handful of recent item-9 answers still waiting in the safety inbox.
            item_9, unacknowledged = 1, True
            self.open_alerts_left -= 1
            self._alerted.add(p.index)
        else:
            chance = 0.1 if total >= 20 else 0.04 if total >= 15 else 0.01 if total >= 10 else 0.001
            if r.random() < chance:
                item_9 = r.choices((1, 2, 3), (80, 15, 5))[0]
        item_9 = max(min(item_9, total), total - 24)
        items = r.choice(self.items[total - item_9])
        band = 0 if total < 5 else 1 if total < 10 else 2 if total < 15 else 3
        difficulty = r.choice(DIFFICULTY_BY_BAND[band])
        source, entered_by = PHQ9Source.CLINIC, by
        if portal and p.user_id is not None and p.joined_at is not None and taken_at > p.joined_at:
            source, entered_by = PHQ9Source.PORTAL, p.user_id
        ack_at = ack_by = None
        action = ""
        if item_9 and not unacknowledged:
            ack = taken_at + dt.timedelta(minutes=r.randint(5, 240))
            if ack <= self.now:
                ack_at, ack_by, action = ack, p.clinician, self.encrypt(r.choice(SAFETY_ACTIONS))
        assessment_id = self.uuid()
        if item_9 and ack_at is None:
            self.chunk.open_safety_alerts.append(assessment_id)
        self.rows["phq9"].append(
            (
                assessment_id, taken_at, ack_at or taken_at, p.id, taken_at, *items, item_9, difficulty, source,
                entered_by, ack_at, ack_by, action,
            )
        )  # fmt: skip
        p.last_change = max(p.last_change, ack_at or taken_at)
        return True

    def course_of(self, p: _Patient) -> str:
        return "five_year" if p.index == 0 else self.courses[p.index - 1]

    def _portal_user(self, p: _Patient) -> None:
        """The portal account an invitation creates (login = email), before its password is set
        for most; the password itself is never usable here (only the five-year patient's is)."""
        r = self.rng
        password = UNUSABLE_PASSWORD_PREFIX + "".join(r.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=40))
        last_login = p.joined_at + dt.timedelta(days=r.randint(0, 400)) if r.random() < 0.6 else None
        if last_login is not None and last_login > self.now:
            last_login = self.now - dt.timedelta(hours=r.randint(1, 48))
        self.rows["users"].append(
            (p.user_id, password, last_login, False, p.email, p.first, p.last, p.email, False, True, p.joined_at)
        )
        self.rows["user_groups"].append((p.user_id, self.s.patient_group_id))

    def patient_row(self, p: _Patient, *, mrn: str, created_at: dt.datetime, status: str, five_year: bool) -> None:
        r = self.rng
        age = max(18, min(84, round(r.gauss(44, 13))))
        born = self.today - dt.timedelta(days=age * 365 + r.randint(0, 364))
        has_email = five_year or p.user_id is not None or r.random() < 0.8
        email = self.encrypt(p.email) if has_email else ""
        phone = self.encrypt(f"(555) {r.randint(200, 999)}-{r.randint(1000, 9999)}") if r.random() < 0.9 else ""
        address = (
            self.encrypt(f"{r.randint(1, 999)} {r.choice(STREETS)}, {r.choice(TOWNS)}") if r.random() < 0.5 else ""
        )
        if r.random() < 0.6:
            contact = self.encrypt(f"{r.choice(FIRST_NAMES)} {p.last}")
            contact_phone = self.encrypt(f"(555) {r.randint(200, 999)}-{r.randint(1000, 9999)}")
        else:
            contact = contact_phone = ""
        diagnosis = (
            Diagnosis.TREATMENT_RESISTANT_DEPRESSION
            if five_year
            else r.choices([d for d, _ in DIAGNOSES], [w for _, w in DIAGNOSES])[0]
        )
        self.rows["patients"].append(
            (
                p.id, created_at, max(created_at, min(p.last_change, self.now)), mrn, p.first, p.last, born, email,
                phone, address, contact, contact_phone, diagnosis, Decimal(p.weight_tenths).scaleb(-1), p.weight_day,
                status, p.clinician, has_email and r.random() < 0.6, p.user_id,
            )
        )  # fmt: skip


def five_year_joined_at(today: dt.date) -> dt.datetime:
    """When the five-year patient set up their portal account: ten days after intake."""
    return clinic_datetime(_years_before(today, HISTORY_YEARS) + dt.timedelta(days=10), dt.time(18))


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


# --- The database side -------------------------------------------------------------------------

STAFF_NAMES = [
    ("Maya", "Lee"), ("Daniel", "Okafor"), ("Priya", "Raman"), ("Tom", "Becker"), ("Grace", "Liu"),
    ("Samuel", "Adeyemi"), ("Elena", "Petrova"), ("Marcus", "Hill"), ("Hana", "Suzuki"), ("Luis", "Navarro"),
    ("Claire", "Dubois"), ("Ibrahim", "Saleh"), ("Rachel", "Stein"), ("Kofi", "Asante"), ("Anna", "Kowalczyk"),
    ("Jamal", "Wright"), ("Sofia", "Marino"), ("Ben", "Fletcher"), ("Nina", "Johansson"), ("Ravi", "Menon"),
    ("Sam", "Ortiz"), ("Jo", "Kim"), ("Alicia", "Reed"), ("Pat", "Gallagher"), ("Dana", "Whitaker"),
]  # fmt: skip


def replica_allowed(connection) -> bool:
    """May this connection turn triggers off (``session_replication_role = replica``)?

    Only a superuser may (or, from PostgreSQL 15, a role granted SET on the parameter).
    Tried in a savepoint that is rolled back, so nothing changes."""
    from django.db import DatabaseError, transaction

    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            transaction.set_rollback(True, using=connection.alias)
    except DatabaseError:
        return False
    return True


def _holidays(first_year: int, last_year: int) -> list[tuple[dt.date, str]]:
    days = []
    for year in range(first_year, last_year + 1):
        november = dt.date(year, 11, 1)
        thanksgiving = november + dt.timedelta(days=(3 - november.weekday()) % 7 + 21)
        days += [
            (dt.date(year, 1, 1), "New Year's Day"),
            (dt.date(year, 7, 4), "Independence Day"),
            (thanksgiving, "Thanksgiving"),
            (dt.date(year, 12, 25), "Christmas Day"),
        ]
    return days


def prepare(connection, *, password: str, today: dt.date, now: dt.datetime) -> tuple[Setup, dict[str, list[str]]]:
    """Staff accounts, protocols and holidays (created or reused), and the five-year patient's
    portal login. Returns the generator's set-up and the usernames by role."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, User

    from patients.access import Role
    from sessions.models import ClosedDay, Protocol

    groups = {
        role: Group.objects.get_or_create(name=role.value)[0] for role in (Role.CLINICIAN, Role.SCHEDULER, Role.PATIENT)
    }
    # One hash for every scale login: hashing each (Argon2) would cost a second or two for nothing.
    hashed = make_password(password)

    def account(username: str, first: str, last: str, role: Role) -> User:
        user, _ = User.objects.update_or_create(
            username=username,
            defaults={
                "first_name": first, "last_name": last, "email": f"{username}@scale.clinic", "password": hashed,
                "is_active": True, "is_staff": False, "is_superuser": False,
            },
        )  # fmt: skip
        user.groups.add(groups[role])
        return user

    names = iter(STAFF_NAMES * 4)
    usernames: dict[str, list[str]] = {"clinician": [], "scheduler": []}
    clinicians, schedulers = [], []
    for number in range(1, CLINICIANS + 1):
        username = CLINICIAN_USERNAME if number == 1 else f"{CLINICIAN_USERNAME}_{number}"
        clinicians.append(account(username, *next(names), Role.CLINICIAN).pk)
        usernames["clinician"].append(username)
    for number in range(1, SCHEDULERS + 1):
        username = SCHEDULER_USERNAME if number == 1 else f"{SCHEDULER_USERNAME}_{number}"
        schedulers.append(account(username, *next(names), Role.SCHEDULER).pk)
        usernames["scheduler"].append(username)

    existing = User.objects.filter(username=PORTAL_USERNAME).first()
    if existing is not None and hasattr(existing, "patient"):
        raise ValueError(
            f"The login {PORTAL_USERNAME!r} belongs to patient {existing.patient.mrn}, not to scale data: "
            "rename or remove that account first."
        )
    five_year = account(PORTAL_USERNAME, *FIVE_YEAR_NAME, Role.PATIENT)
    five_year.email = "casey.whitfield@example.com"
    five_year.date_joined = five_year_joined_at(today)
    five_year.save(update_fields=["email", "date_joined"])

    protocols = {}
    for key, (name, count, per_week, route, drug, unit, dose, minutes, _share) in PROTOCOLS.items():
        protocol, _ = Protocol.objects.get_or_create(
            name=name,
            defaults={
                "infusion_count": count, "infusions_per_week": per_week, "route": route, "drug": drug,
                "dose_unit": unit, "dose": Decimal(dose), "duration_minutes": minutes,
                "description": "Created by seed_scale.",
            },
        )  # fmt: skip
        protocols[key] = ProtocolSpec(
            key=key, id=protocol.pk, count=protocol.infusion_count, per_week=protocol.infusions_per_week,
            route=protocol.route, drug=protocol.drug, weight_based=protocol.is_weight_based, dose=protocol.dose,
            minutes=protocol.duration_minutes,
        )  # fmt: skip

    horizon = _years_before(today, HISTORY_YEARS)
    ClosedDay.objects.bulk_create(
        [ClosedDay(date=day, reason=reason) for day, reason in _holidays(horizon.year, today.year + 1)],
        ignore_conflicts=True,
    )
    closed = set(ClosedDay.objects.values_list("date", flat=True))

    def reserve_user_ids(count: int) -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('auth_user', 'id')) FROM generate_series(1, %s)", [count]
            )
            return sorted(row[0] for row in cursor.fetchall())

    setup = Setup(
        today=today, now=now, clinicians=clinicians, schedulers=schedulers, protocols=protocols,
        closed_dates=closed, patient_group_id=groups[Role.PATIENT].pk, five_year_user_id=five_year.pk,
        reserve_user_ids=reserve_user_ids,
    )  # fmt: skip
    return setup, usernames


def spare_trigger_exceptions(cursor) -> None:
    """Make the change-history triggers cheaper per row, changing nothing they do.

    Each history trigger first asks pgtrigger whether to stand aside (``pgtrigger.ignore``)
    and then attaches the history context (``pghistory.context_id``): when a setting is
    absent, reading it raises an error the trigger catches, a subtransaction each time,
    which makes a trigger several times slower than its insert. The command sets the
    context (``pghistory.context``); here the list of triggers to ignore is set to an empty
    one, if nothing set it already. No trigger is ignored; the clinic's guards do not read
    this setting at all (audit/migrations/0006_database_guards.py).
    """
    cursor.execute(
        "SELECT set_config('pgtrigger.ignore', '{}', true) "
        "WHERE coalesce(current_setting('pgtrigger.ignore', true), '') IN ('', '{}')"
    )


def _copy(cursor, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    names = ", ".join(f'"{column}"' for column in columns)
    with cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        write = copy.write_row
        for row in rows:
            write(row)


@dataclass
class LoadResult:
    rows: Counter = field(default_factory=Counter)
    generate_seconds: float = 0.0
    copy_seconds: float = 0.0
    sign_seconds: float = 0.0
    open_safety_alerts: list[uuid.UUID] = field(default_factory=list)


def load(connection, generator: ClinicGenerator, *, with_triggers: bool) -> LoadResult:
    """Generate and COPY the rows, chunk by chunk.

    In replica mode the rows go in as they are (signed sessions included). With triggers
    on, the signed-record guards refuse vitals or side effects for a signed session: the
    sessions go in unsigned, then their vitals and side effects, and the signatures are set
    at the end by one UPDATE (which the change history records, as a real signature is).
    """
    result = LoadResult()
    chunks = generator.chunks()
    with connection.cursor() as cursor:
        if with_triggers:
            cursor.execute(
                "CREATE TEMPORARY TABLE seed_scale_signature "
                "(id uuid PRIMARY KEY, signed_at timestamptz NOT NULL, signed_by_id integer NOT NULL)"
            )
        while True:
            started = time.perf_counter()
            chunk = next(chunks, None)
            result.generate_seconds += time.perf_counter() - started
            if chunk is None:
                break
            started = time.perf_counter()
            for name, table, columns in TABLES:
                rows = chunk.rows[name]
                if not rows:
                    continue
                if name == "sessions" and with_triggers:
                    signatures = [(row[0], row[SIGNED_AT], row[SIGNED_BY]) for row in rows if row[SIGNED_AT]]
                    _copy(cursor, "seed_scale_signature", ("id", "signed_at", "signed_by_id"), signatures)
                    rows = [
                        (
                            *row[:UPDATED_AT],
                            row[DISCHARGED_AT] or row[UPDATED_AT],
                            *row[UPDATED_AT + 1 : SIGNED_AT],
                            None,
                            None,
                        )
                        for row in rows
                    ]
                _copy(cursor, table, columns, rows)
                result.rows[table] += len(rows)
            result.open_safety_alerts += chunk.open_safety_alerts
            result.copy_seconds += time.perf_counter() - started
        if with_triggers:
            started = time.perf_counter()
            cursor.execute(
                "UPDATE infusions_infusionsession AS s "
                "SET signed_at = v.signed_at, signed_by_id = v.signed_by_id, updated_at = v.signed_at "
                "FROM seed_scale_signature AS v WHERE s.id = v.id"
            )
            cursor.execute("DROP TABLE seed_scale_signature")
            result.sign_seconds = time.perf_counter() - started
    return result


def _loaded_models() -> list[type]:
    from django.contrib.auth.models import User

    from maintenance.models import MaintenancePlan
    from patients.models import Patient, PHQ9Assessment
    from sessions.models import InductionSeries, InfusionSession, SideEffect, VitalSignReading

    return [
        User.groups.through, Patient, PHQ9Assessment, InductionSeries, InfusionSession, VitalSignReading,
        SideEffect, MaintenancePlan,
    ]  # fmt: skip


def dangling_references(connection) -> dict[str, int]:
    """Foreign keys naming a missing row (``table.column`` -> count), in the loaded tables and
    in every table that refers to them. Replica mode turns the foreign-key triggers off, for
    the deletion of earlier scale data as for the load, so the command checks itself."""
    from django.apps import apps

    loaded = set(_loaded_models())
    touched = {field_.related_model for model in loaded for field_ in model._meta.concrete_fields if field_.is_relation}
    touched |= loaded
    found = {}
    with connection.cursor() as cursor:
        for model in apps.get_models(include_auto_created=True):
            if model._meta.proxy or not model._meta.managed:
                continue
            table = model._meta.db_table
            for field_ in model._meta.concrete_fields:
                if not field_.is_relation or not field_.db_constraint:
                    continue
                if model not in loaded and field_.related_model not in touched:
                    continue
                parent = field_.related_model._meta.db_table
                target = field_.target_field.column
                cursor.execute(
                    f'SELECT count(*) FROM "{table}" AS c WHERE c."{field_.column}" IS NOT NULL AND NOT EXISTS '
                    f'(SELECT 1 FROM "{parent}" AS p WHERE p."{target}" = c."{field_.column}")'
                )
                count = cursor.fetchone()[0]
                if count:
                    found[f"{table}.{field_.column}"] = count
    return found


def analyze(connection) -> None:
    """Fresh planner statistics for the tables just filled (autovacuum would get there later)."""
    with connection.cursor() as cursor:
        for _name, table, _columns in TABLES:
            cursor.execute(f'ANALYZE "{table}"')


def delete_scale_data(connection) -> Counter:
    """Delete the earlier scale patients (MRN prefix) and everything that hangs off them,
    table by table following the foreign keys, and their portal accounts.

    Needs replica mode: signed infusions cannot be deleted with the guards on. The change
    history and the access log keep what they recorded (they are append-only, and refer to
    records without a foreign key)."""
    from django.contrib.auth.models import User

    from patients.models import Patient

    deleted: Counter = Counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id FROM patients_patient WHERE mrn LIKE %s AND user_id IS NOT NULL", [MRN_PREFIX + "%"]
        )
        portal_users = [row[0] for row in cursor.fetchall()]
        _delete_following_keys(cursor, Patient, "mrn LIKE %s", [MRN_PREFIX + "%"], deleted)
    if portal_users:
        for start in range(0, len(portal_users), 5000):
            _count, per_model = User.objects.filter(pk__in=portal_users[start : start + 5000]).delete()
            for label, count in per_model.items():
                deleted[label] += count
    return deleted


def _delete_following_keys(cursor, model, where: str, params: list, deleted: Counter) -> None:
    from django.db import models
    from django.db.models.deletion import get_candidate_relations_to_delete

    table, pk = model._meta.db_table, model._meta.pk.column
    selected = f'SELECT "{pk}" FROM "{table}" WHERE {where}'
    # Every key to this model, hidden ones (related_name="+") included, as Django's own
    # deletion collector finds them.
    for relation in get_candidate_relations_to_delete(model._meta):
        child, key = relation.related_model, relation.field
        if child._meta.proxy or not key.db_constraint:
            continue  # the change history and the access log refer to records without a key
        condition = f'"{key.column}" IN ({selected})'
        if relation.on_delete is models.SET_NULL:
            cursor.execute(f'UPDATE "{child._meta.db_table}" SET "{key.column}" = NULL WHERE {condition}', params)
        else:
            _delete_following_keys(cursor, child, condition, params, deleted)
    cursor.execute(f'DELETE FROM "{table}" WHERE {where}', params)
    deleted[table] += cursor.rowcount
