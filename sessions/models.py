"""Protocols, induction series, infusion sessions and what is logged during them."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Count, Q
from django.utils import timezone

from clinic.db import PublicModel
from clinic.encryption import EncryptedCharField, EncryptedJSONField, EncryptedTextField
from patients.models import MAX_WEIGHT_KG, MIN_WEIGHT_KG, Patient, PHQ9Assessment
from patients.phq9 import phq9_baseline
from sessions.dosing import DOSE_TOLERANCE_MG, MAX_FIXED_MG, MAX_MG_PER_KG
from sessions.scheduling import MIN_SPACING_DAYS, clinic_date
from sessions.vitals import VitalAlert, VitalPhase, vital_alerts


class Route(models.TextChoices):
    IV = "iv", "Intravenous (IV)"
    IM = "im", "Intramuscular (IM)"
    ORAL = "oral", "Sublingual / oral"
    INTRANASAL = "intranasal", "Intranasal"


class Drug(models.TextChoices):
    KETAMINE = "ketamine", "Racemic ketamine"
    ESKETAMINE = "esketamine", "Esketamine"


class DoseUnit(models.TextChoices):
    MG_PER_KG = "mg_per_kg", "mg/kg of body weight"
    MG = "mg", "fixed mg"


class Protocol(PublicModel):
    """A treatment template: how many infusions, how often, and what is given."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    infusion_count = models.PositiveSmallIntegerField(
        "infusions in the induction series", default=6, validators=[MinValueValidator(1), MaxValueValidator(12)]
    )
    infusions_per_week = models.PositiveSmallIntegerField(
        default=2, choices=[(n, f"{n} a week") for n in sorted(MIN_SPACING_DAYS)]
    )
    route = models.CharField(max_length=16, choices=Route.choices, default=Route.IV)
    drug = models.CharField(max_length=16, choices=Drug.choices, default=Drug.KETAMINE)
    dose_unit = models.CharField(max_length=16, choices=DoseUnit.choices, default=DoseUnit.MG_PER_KG)
    dose = models.DecimalField(
        "dose (mg/kg or mg)", max_digits=5, decimal_places=2, help_text="mg/kg for weight-based doses, mg for fixed."
    )
    duration_minutes = models.PositiveSmallIntegerField(
        "infusion minutes", default=40, validators=[MinValueValidator(1), MaxValueValidator(240)]
    )
    is_active = models.BooleanField(default=True, help_text="Inactive protocols cannot start new series.")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(infusion_count__range=(1, 12)), name="protocol_count_range"),
            models.CheckConstraint(
                condition=Q(infusions_per_week__in=sorted(MIN_SPACING_DAYS)), name="protocol_per_week_valid"
            ),
            models.CheckConstraint(condition=Q(route__in=Route.values), name="protocol_route_valid"),
            models.CheckConstraint(condition=Q(drug__in=Drug.values), name="protocol_drug_valid"),
            models.CheckConstraint(
                condition=Q(dose_unit=DoseUnit.MG_PER_KG, dose__gt=0, dose__lte=MAX_MG_PER_KG)
                | Q(dose_unit=DoseUnit.MG, dose__gt=0, dose__lte=MAX_FIXED_MG),
                name="protocol_dose_range",
                violation_error_message=(
                    f"The dose must be above 0 and at most {MAX_MG_PER_KG} mg/kg or {MAX_FIXED_MG} mg."
                ),
            ),
            models.CheckConstraint(
                condition=~Q(route=Route.INTRANASAL) | Q(dose_unit=DoseUnit.MG),
                name="protocol_intranasal_fixed_dose",
                violation_error_message="Intranasal doses are fixed (e.g. 56 or 84 mg), not per kg.",
            ),
            models.CheckConstraint(condition=Q(duration_minutes__range=(1, 240)), name="protocol_duration_range"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_weight_based(self) -> bool:
        return self.dose_unit == DoseUnit.MG_PER_KG

    @property
    def dose_display(self) -> str:
        return f"{self.dose.normalize():f} {'mg/kg' if self.is_weight_based else 'mg'}"


class ClosedDay(PublicModel):
    """A date the clinic is closed (holiday), besides the closed weekdays setting."""

    date = models.DateField(unique=True)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {self.reason}".strip()


class InductionSeriesQuerySet(models.QuerySet):
    def with_progress(self) -> InductionSeriesQuerySet:
        """Annotate ``completed_count`` (completed infusions of each series)."""
        return self.annotate(
            completed_count=Count("sessions", filter=Q(sessions__status=SessionStatus.COMPLETED), distinct=True)
        )


class InductionSeries(PublicModel):
    """A patient's induction: one treatment episode, built from a protocol and a start date.

    Each planned infusion is its own ``InfusionSession`` row; the series keeps the
    protocol's count and frequency as they were when it was planned.
    """

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="series")
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="series")
    planned_infusions = models.PositiveSmallIntegerField()
    infusions_per_week = models.PositiveSmallIntegerField()
    start_date = models.DateField()
    discontinued_at = models.DateTimeField(null=True, blank=True)
    discontinued_reason = EncryptedTextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = InductionSeriesQuerySet.as_manager()

    class Meta:
        verbose_name = "induction series"
        verbose_name_plural = "induction series"
        ordering = ["-start_date"]
        indexes = [
            # Patient page: a patient's series, newest first; current-episode lookup.
            models.Index(fields=["patient", "-start_date"], name="series_patient_start_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(planned_infusions__range=(1, 12)), name="series_count_range"),
            models.CheckConstraint(
                condition=Q(infusions_per_week__in=sorted(MIN_SPACING_DAYS)), name="series_per_week_valid"
            ),
            models.CheckConstraint(
                condition=Q(discontinued_at__isnull=True, discontinued_reason="")
                | (Q(discontinued_at__isnull=False) & ~Q(discontinued_reason="")),
                name="series_discontinued_with_reason",
                violation_error_message="A discontinued series records when and why.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient} induction from {self.start_date:%Y-%m-%d}"

    def completed_infusions(self) -> int:
        count = getattr(self, "completed_count", None)
        if count is None:
            count = self.sessions.filter(status=SessionStatus.COMPLETED).count()
        return count

    def first_infusion_at(self) -> dt.datetime | None:
        """When the episode's first infusion started (or is booked to start)."""
        first = self.sessions.filter(status__in=OCCUPYING_STATUSES).order_by("scheduled_at").first()
        if first is None:
            return None
        return first.started_at or first.scheduled_at

    def baseline(self) -> PHQ9Assessment | None:
        """The episode's baseline PHQ-9 (latest in the window before its first infusion)."""
        first = self.first_infusion_at()
        return phq9_baseline(patient=self.patient, first_infusion_at=first) if first else None

    @property
    def is_complete(self) -> bool:
        """Complete when its planned number of infusions has been given."""
        return self.completed_infusions() >= self.planned_infusions

    @property
    def is_in_progress(self) -> bool:
        return self.discontinued_at is None and not self.is_complete


class SessionKind(models.TextChoices):
    INDUCTION = "induction", "Induction"
    BOOSTER = "booster", "Booster"


class SessionStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    MISSED = "missed", "Missed"


#: Statuses that occupy the patient's day: at most one such session per patient per day.
OCCUPYING_STATUSES = (SessionStatus.SCHEDULED, SessionStatus.COMPLETED)


class SessionLocked(ValidationError):
    """A signed infusion record was changed outside an amendment."""


#: The signed-record lock holds in the database too, whoever writes (the ORM, a bulk
#: update, the admin or plain SQL): triggers in audit/migrations/0005_database_guards.py
#: refuse to change or delete a signed infusion, or its vitals and side effects, unless the
#: same transaction has recorded an amendment to it (sessions.services.session_amend).
_LOCKED_MESSAGE = "This infusion record is signed and locked; record a correction as an amendment."


class DissociationScale(models.TextChoices):
    CADSS = "cadss", "CADSS (23 items, 0-92)"
    CADSS6 = "cadss6", "CADSS-6 short form (0-24)"


DISSOCIATION_MAX = {DissociationScale.CADSS: 92, DissociationScale.CADSS6: 24}


class InfusionSession(PublicModel):
    """One infusion appointment and, once given, its clinical record.

    Induction infusions belong to a series; boosters are planned by the maintenance app
    (``kind=booster``). A signed record is locked: corrections are ``InfusionAmendment``
    rows that keep the original values.
    """

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="infusion_sessions")
    series = models.ForeignKey(
        InductionSeries, on_delete=models.PROTECT, null=True, blank=True, related_name="sessions"
    )
    kind = models.CharField(max_length=16, choices=SessionKind.choices, default=SessionKind.INDUCTION)
    scheduled_at = models.DateTimeField()
    #: The clinic-local day of ``scheduled_at``, kept for the one-infusion-a-day constraint.
    scheduled_on = models.DateField(editable=False)
    status = models.CharField(max_length=16, choices=SessionStatus.choices, default=SessionStatus.SCHEDULED)
    route = models.CharField(max_length=16, choices=Route.choices)
    drug = models.CharField(max_length=16, choices=Drug.choices)
    dose_mg_per_kg = models.DecimalField(
        "dose (mg/kg)", max_digits=4, decimal_places=2, null=True, blank=True, help_text="Empty for fixed doses."
    )
    weight_kg_used = models.DecimalField(
        "weight used (kg)",
        max_digits=4,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(MIN_WEIGHT_KG), MaxValueValidator(MAX_WEIGHT_KG)],
    )
    dose_mg = models.DecimalField("total dose (mg)", max_digits=5, decimal_places=1, null=True, blank=True)
    planned_minutes = models.PositiveSmallIntegerField(default=40)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    administered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    dissociation_scale = models.CharField(max_length=8, choices=DissociationScale.choices, blank=True)
    dissociation_score = models.PositiveSmallIntegerField(null=True, blank=True)
    discharged_at = models.DateTimeField(null=True, blank=True)
    discharged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Free text is encrypted at rest (clinic/encryption.py), and so cannot be searched.
    notes = EncryptedTextField("clinical notes", blank=True)
    status_reason = EncryptedCharField(max_length=200, blank=True, help_text="Why a session was cancelled or missed.")
    signed_at = models.DateTimeField(null=True, blank=True)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["scheduled_at"]
        indexes = [
            # Patient page timeline and the last infusion of a patient.
            models.Index(fields=["patient", "-scheduled_at"], name="session_patient_sched_idx"),
            # Clinician's day list and the week calendar.
            models.Index(fields=["scheduled_on"], name="session_day_idx"),
            # Booster scan: each patient's last completed infusion.
            models.Index(
                fields=["patient", "-scheduled_on"],
                condition=Q(status="completed"),
                name="session_completed_idx",
            ),
            # Outcomes: each series' completed induction infusions in order (sessions/outcomes.py
            # numbers them), read from the index alone, without sorting. The last three columns
            # are only carried (key columns, not INCLUDE: SQLite has no covering indexes).
            models.Index(
                fields=["series", "scheduled_at", "id", "patient", "started_at", "scheduled_on"],
                condition=Q(kind="induction", status="completed"),
                name="session_series_given_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "scheduled_on"],
                condition=Q(status__in=OCCUPYING_STATUSES),
                name="session_one_per_patient_day",
                violation_error_message="This patient already has an infusion on that day.",
            ),
            models.CheckConstraint(condition=Q(status__in=SessionStatus.values), name="session_status_valid"),
            models.CheckConstraint(condition=Q(route__in=Route.values), name="session_route_valid"),
            models.CheckConstraint(condition=Q(drug__in=Drug.values), name="session_drug_valid"),
            models.CheckConstraint(
                condition=Q(kind=SessionKind.INDUCTION, series__isnull=False)
                | Q(kind=SessionKind.BOOSTER, series__isnull=True),
                name="session_kind_matches_series",
            ),
            models.CheckConstraint(
                condition=Q(dose_mg_per_kg__isnull=True) | Q(dose_mg_per_kg__gt=0, dose_mg_per_kg__lte=MAX_MG_PER_KG),
                name="session_mg_per_kg_range",
            ),
            models.CheckConstraint(
                condition=Q(dose_mg__isnull=True) | Q(dose_mg__gt=0, dose_mg__lte=MAX_FIXED_MG),
                name="session_dose_mg_range",
            ),
            models.CheckConstraint(
                condition=Q(weight_kg_used__isnull=True) | Q(weight_kg_used__range=(MIN_WEIGHT_KG, MAX_WEIGHT_KG)),
                name="session_weight_range",
            ),
            models.CheckConstraint(
                condition=Q(dose_mg_per_kg__isnull=True)
                | Q(dose_mg__isnull=True)
                | Q(
                    # mg = mg/kg x kg, to the 0.1 mg the dose is recorded in (the tolerance
                    # absorbs floating-point rounding on SQLite in development).
                    weight_kg_used__isnull=False,
                    dose_mg__gte=models.F("dose_mg_per_kg") * models.F("weight_kg_used") - DOSE_TOLERANCE_MG,
                    dose_mg__lte=models.F("dose_mg_per_kg") * models.F("weight_kg_used") + DOSE_TOLERANCE_MG,
                ),
                name="session_dose_is_mg_per_kg_times_weight",
                violation_error_message="A weight-based dose is mg/kg x the weight used, kept with that weight.",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(started_at__isnull=False, ended_at__gt=models.F("started_at")),
                name="session_end_after_start",
                violation_error_message="The infusion must end after it started.",
            ),
            models.CheckConstraint(
                condition=Q(discharged_at__isnull=True)
                | Q(ended_at__isnull=False, discharged_at__gte=models.F("ended_at"), discharged_by__isnull=False),
                name="session_discharge_after_end",
                violation_error_message="Discharge comes after the infusion ended, and records who discharged.",
            ),
            models.CheckConstraint(
                condition=~Q(status=SessionStatus.COMPLETED)
                | Q(
                    started_at__isnull=False,
                    ended_at__isnull=False,
                    dose_mg__isnull=False,
                    administered_by__isnull=False,
                ),
                name="session_completed_has_record",
                violation_error_message="A completed infusion records its start, end, dose and who gave it.",
            ),
            models.CheckConstraint(
                condition=Q(signed_at__isnull=True, signed_by__isnull=True)
                | Q(signed_at__isnull=False, signed_by__isnull=False, status=SessionStatus.COMPLETED),
                name="session_signed_only_completed",
            ),
            models.CheckConstraint(
                condition=Q(dissociation_scale="", dissociation_score__isnull=True)
                | Q(
                    dissociation_scale=DissociationScale.CADSS,
                    dissociation_score__isnull=False,
                    dissociation_score__lte=DISSOCIATION_MAX[DissociationScale.CADSS],
                )
                | Q(
                    dissociation_scale=DissociationScale.CADSS6,
                    dissociation_score__isnull=False,
                    dissociation_score__lte=DISSOCIATION_MAX[DissociationScale.CADSS6],
                ),
                name="session_dissociation_score_range",
                violation_error_message="A dissociation score needs its scale: CADSS 0-92 or CADSS-6 0-24.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.patient.mrn} {self.scheduled_on:%Y-%m-%d}"

    @property
    def is_signed(self) -> bool:
        return self.signed_at is not None

    @property
    def is_weight_based(self) -> bool:
        return self.dose_mg_per_kg is not None

    def _stored_as_signed(self) -> bool:
        return (
            self.pk is not None
            and not self._state.adding
            and type(self).objects.filter(pk=self.pk, signed_at__isnull=False).exists()
        )

    def clean(self) -> None:
        if self._stored_as_signed():
            raise SessionLocked(_LOCKED_MESSAGE)
        if self.scheduled_at:
            self.scheduled_on = clinic_date(self.scheduled_at)
        if self.series_id is not None and self.patient_id is not None and self.series.patient_id != self.patient_id:
            raise ValidationError({"series": "The series belongs to another patient."})

    def save(self, *args, **kwargs) -> None:
        # The lock holds for every save through the ORM; amendments write with
        # QuerySet.update() inside sessions.services.session_amend.
        if self._stored_as_signed():
            raise SessionLocked(_LOCKED_MESSAGE)
        self.scheduled_on = clinic_date(self.scheduled_at)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "scheduled_at" in update_fields:
            kwargs["update_fields"] = {*update_fields, "scheduled_on"}
        super().save(*args, **kwargs)


class LockedChildMixin:
    """Rows logged inside a session cannot change once the session is signed."""

    def _refuse_if_locked(self) -> None:
        if InfusionSession.objects.filter(pk=self.session_id, signed_at__isnull=False).exists():
            raise SessionLocked(_LOCKED_MESSAGE)

    def clean(self) -> None:
        self._refuse_if_locked()

    def save(self, *args, **kwargs) -> None:
        self._refuse_if_locked()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        self._refuse_if_locked()
        return super().delete(*args, **kwargs)


#: Plausible ranges of a reading; anything outside is a typing error, not a patient.
SYSTOLIC_RANGE = (50, 300)  # mmHg
DIASTOLIC_RANGE = (20, 200)  # mmHg
HEART_RATE_RANGE = (20, 250)  # beats/min
SPO2_RANGE = (50, 100)  # %


def _vital_field(verbose_name: str, bounds: tuple[int, int]) -> models.PositiveSmallIntegerField:
    return models.PositiveSmallIntegerField(
        verbose_name,
        null=True,
        blank=True,
        validators=[MinValueValidator(bounds[0]), MaxValueValidator(bounds[1])],
    )


class VitalSignReading(LockedChildMixin, PublicModel):
    """One timestamped set of vital signs (mmHg, beats/min, % SpO2)."""

    session = models.ForeignKey(InfusionSession, on_delete=models.CASCADE, related_name="vitals")
    taken_at = models.DateTimeField()
    phase = models.CharField(max_length=16, choices=VitalPhase.choices, default=VitalPhase.DURING)
    systolic = _vital_field("systolic (mmHg)", SYSTOLIC_RANGE)
    diastolic = _vital_field("diastolic (mmHg)", DIASTOLIC_RANGE)
    heart_rate = _vital_field("heart rate (/min)", HEART_RATE_RANGE)
    spo2 = _vital_field("SpO2 (%)", SPO2_RANGE)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["taken_at"]
        constraints = [
            models.CheckConstraint(condition=Q(phase__in=VitalPhase.values), name="vitals_phase_valid"),
            models.CheckConstraint(
                condition=Q(systolic__isnull=True, diastolic__isnull=True)
                | Q(
                    # explicit IS NOT NULL: a CHECK passes when its condition is NULL
                    systolic__isnull=False,
                    diastolic__isnull=False,
                    systolic__range=SYSTOLIC_RANGE,
                    diastolic__range=DIASTOLIC_RANGE,
                    systolic__gt=models.F("diastolic"),
                ),
                name="vitals_blood_pressure_plausible",
                violation_error_message=(
                    "Blood pressure needs both values, 50-300 over 20-200 mmHg, systolic above diastolic."
                ),
            ),
            models.CheckConstraint(
                condition=Q(heart_rate__isnull=True) | Q(heart_rate__range=HEART_RATE_RANGE),
                name="vitals_heart_rate_range",
            ),
            models.CheckConstraint(
                condition=Q(spo2__isnull=True) | Q(spo2__range=SPO2_RANGE), name="vitals_spo2_range"
            ),
            models.CheckConstraint(
                condition=Q(systolic__isnull=False) | Q(heart_rate__isnull=False) | Q(spo2__isnull=False),
                name="vitals_not_empty",
                violation_error_message="Record at least one vital sign.",
            ),
        ]

    def __str__(self) -> str:
        return f"Vitals {timezone.localtime(self.taken_at):%H:%M}"

    def alerts(self) -> list[VitalAlert]:
        return vital_alerts(
            phase=self.phase,
            systolic=self.systolic,
            diastolic=self.diastolic,
            heart_rate=self.heart_rate,
            spo2=self.spo2,
        )


class SideEffectKind(models.TextChoices):
    NAUSEA_VOMITING = "nausea_vomiting", "Nausea / vomiting"
    DISSOCIATION = "dissociation", "Dissociation"
    DIZZINESS = "dizziness", "Dizziness"
    HEADACHE = "headache", "Headache"
    ANXIETY_AGITATION = "anxiety_agitation", "Anxiety / agitation"
    HYPERTENSION = "hypertension", "Hypertension"
    SEDATION = "sedation", "Sedation"
    OTHER = "other", "Other"


class SideEffectSeverity(models.TextChoices):
    MILD = "mild", "Mild"
    MODERATE = "moderate", "Moderate"
    SEVERE = "severe", "Severe"


class SideEffect(LockedChildMixin, PublicModel):
    session = models.ForeignKey(InfusionSession, on_delete=models.CASCADE, related_name="side_effects")
    kind = models.CharField(max_length=24, choices=SideEffectKind.choices)
    severity = models.CharField(max_length=16, choices=SideEffectSeverity.choices, default=SideEffectSeverity.MILD)
    note = EncryptedCharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "kind"],
                name="side_effect_once_per_session",
                violation_error_message="This side effect is already recorded for this infusion.",
            ),
            models.CheckConstraint(condition=Q(kind__in=SideEffectKind.values), name="side_effect_kind_valid"),
            models.CheckConstraint(
                condition=Q(severity__in=SideEffectSeverity.values), name="side_effect_severity_valid"
            ),
            models.CheckConstraint(
                condition=~Q(kind=SideEffectKind.OTHER) | ~Q(note=""),
                name="side_effect_other_described",
                violation_error_message="Describe a side effect of kind 'other'.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.get_severity_display()})"

    def clean(self) -> None:
        super().clean()
        if self.kind == SideEffectKind.OTHER and not self.note.strip():
            raise ValidationError({"note": "Describe a side effect of kind 'other'."})


class InfusionAmendment(PublicModel):
    """A correction to a signed infusion record; ``changes`` keeps the original values.

    ``changes`` maps each amended field to ``{"from": original, "to": corrected}``.
    """

    session = models.ForeignKey(InfusionSession, on_delete=models.PROTECT, related_name="amendments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = EncryptedTextField()
    # Encrypted as a whole: it holds the original notes an amendment replaced.
    changes = EncryptedJSONField(default=dict)
    # Set by the database on insert (PostgreSQL's transaction id, whatever the client
    # sends): the signed-record lock lets a signed session change only in a transaction
    # that has recorded an amendment to it. Empty on SQLite, which has no such lock.
    transaction_id = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.CheckConstraint(condition=~Q(reason=""), name="amendment_reason_given")]

    def __str__(self) -> str:
        return f"Amendment to {self.session} at {timezone.localtime(self.created_at):%Y-%m-%d %H:%M}"
