"""Patients and their PHQ-9 assessments."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from clinic.db import PublicModel
from clinic.encryption import EncryptedCharField, EncryptedEmailField, EncryptedTextField
from patients.phq9 import ITEM_FIELDS, ITEM_QUESTIONS, SAFETY_ITEM, Answer, Difficulty, Severity, severity_for_total

MIN_WEIGHT_KG = Decimal("20.0")
MAX_WEIGHT_KG = Decimal("350.0")
EARLIEST_BIRTH_DATE = dt.date(1900, 1, 1)


class Diagnosis(models.TextChoices):
    TREATMENT_RESISTANT_DEPRESSION = "trd", "Treatment-resistant depression"
    MAJOR_DEPRESSION = "mdd", "Major depression"
    BIPOLAR_DEPRESSION = "bipolar_depression", "Bipolar depression"
    PTSD = "ptsd", "PTSD"
    ANXIETY = "anxiety", "Anxiety"
    OCD = "ocd", "OCD"
    ALCOHOL_USE_DISORDER = "alcohol_use_disorder", "Alcohol use disorder"
    CHRONIC_PAIN = "chronic_pain", "Chronic pain"
    OTHER = "other", "Other"


class PatientStatus(models.TextChoices):
    INTAKE = "intake", "Intake"  # referred or assessed, no treatment yet
    ACTIVE = "active", "Active"
    ON_HOLD = "on_hold", "On hold"
    DISCHARGED = "discharged", "Discharged"


class Patient(PublicModel):
    mrn = models.CharField("medical record number", max_length=32, unique=True)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    date_of_birth = models.DateField()
    # Contact details are encrypted at rest (clinic/encryption.py): they cannot be searched
    # or sorted on, unlike the name, record number and date of birth above.
    email = EncryptedEmailField(blank=True)
    phone = EncryptedCharField(max_length=32, blank=True)
    address = EncryptedTextField(blank=True)
    emergency_contact_name = EncryptedCharField(max_length=200, blank=True)
    emergency_contact_phone = EncryptedCharField(max_length=32, blank=True)
    primary_diagnosis = models.CharField(max_length=32, choices=Diagnosis.choices)
    weight_kg = models.DecimalField(
        "current weight (kg)",
        max_digits=4,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(MIN_WEIGHT_KG), MaxValueValidator(MAX_WEIGHT_KG)],
    )
    weight_recorded_on = models.DateField("weight recorded on", null=True, blank=True)
    status = models.CharField(max_length=16, choices=PatientStatus.choices, default=PatientStatus.INTAKE)
    primary_clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="primary_patients",
        help_text="The clinician told about this patient's boosters and safety alerts.",
    )
    accepts_email_reminders = models.BooleanField(
        "agrees to appointment reminders by email",
        default=False,
        help_text="Emails say only that an appointment is coming, never what it is for.",
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name="portal account",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="patient",
        help_text="The patient's own portal account, if invited.",
    )

    class Meta:
        ordering = ["last_name", "first_name"]
        indexes = [
            # Patient list: ordering and search by name.
            models.Index(fields=["last_name", "first_name"], name="patient_name_idx"),
            # Patient list: filter by status.
            models.Index(fields=["status"], name="patient_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(mrn=""), name="patient_mrn_not_blank"),
            models.CheckConstraint(condition=Q(date_of_birth__gte=EARLIEST_BIRTH_DATE), name="patient_dob_plausible"),
            models.CheckConstraint(condition=Q(primary_diagnosis__in=Diagnosis.values), name="patient_diagnosis_valid"),
            models.CheckConstraint(condition=Q(status__in=PatientStatus.values), name="patient_status_valid"),
            models.CheckConstraint(
                condition=Q(weight_kg__isnull=True) | Q(weight_kg__range=(MIN_WEIGHT_KG, MAX_WEIGHT_KG)),
                name="patient_weight_range",
            ),
            models.CheckConstraint(
                condition=Q(weight_kg__isnull=True, weight_recorded_on__isnull=True)
                | Q(weight_kg__isnull=False, weight_recorded_on__isnull=False),
                name="patient_weight_has_date",
                violation_error_message="A weight needs the date it was recorded, and a date needs a weight.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.last_name}, {self.first_name} ({self.mrn})"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def age(self) -> int:
        """Age in whole years today (clinic time zone)."""
        today = timezone.localdate()
        born = self.date_of_birth
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))

    def get_absolute_url(self) -> str:
        return reverse("patients:detail", kwargs={"pk": self.pk})

    def clean(self) -> None:
        today = timezone.localdate()
        errors: dict[str, str] = {}
        if self.date_of_birth and self.date_of_birth > today:
            errors["date_of_birth"] = "The date of birth cannot be in the future."
        if self.weight_recorded_on and self.weight_recorded_on > today:
            errors["weight_recorded_on"] = "The weight cannot have been recorded in the future."
        if self.user_id is not None:
            from patients.access import STAFF_ROLES, user_roles

            if self.user.is_staff or self.user.is_superuser or user_roles(self.user) & STAFF_ROLES:
                errors["user"] = "A staff account cannot be a patient's portal account."
        if errors:
            raise ValidationError(errors)


class PHQ9Source(models.TextChoices):
    CLINIC = "clinic", "Entered by clinic staff"
    PORTAL = "portal", "Entered by the patient in the portal"


def _item_field(number: int) -> models.PositiveSmallIntegerField:
    return models.PositiveSmallIntegerField(
        f"item {number}: {ITEM_QUESTIONS[f'item_{number}']}",
        choices=Answer.choices,
    )


class PHQ9Assessment(PublicModel):
    """One completed PHQ-9: every item is stored, never only the total."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="phq9_assessments")
    taken_at = models.DateTimeField(default=timezone.now)
    item_1 = _item_field(1)
    item_2 = _item_field(2)
    item_3 = _item_field(3)
    item_4 = _item_field(4)
    item_5 = _item_field(5)
    item_6 = _item_field(6)
    item_7 = _item_field(7)
    item_8 = _item_field(8)
    item_9 = _item_field(9)
    difficulty = models.CharField(
        "how difficult have these problems made it",
        max_length=16,
        choices=Difficulty.choices,
        blank=True,
        help_text="Recorded, never added to the total.",
    )
    #: 0-27, computed by the database from the nine items.
    total = models.GeneratedField(
        expression=F("item_1")
        + F("item_2")
        + F("item_3")
        + F("item_4")
        + F("item_5")
        + F("item_6")
        + F("item_7")
        + F("item_8")
        + F("item_9"),
        output_field=models.SmallIntegerField(),
        db_persist=True,
    )
    source = models.CharField(max_length=8, choices=PHQ9Source.choices, default=PHQ9Source.CLINIC)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    safety_acknowledged_at = models.DateTimeField(null=True, blank=True)
    safety_acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    safety_action = EncryptedTextField("action taken", blank=True)

    class Meta:
        verbose_name = "PHQ-9 assessment"
        ordering = ["-taken_at"]
        indexes = [
            # Patient page timeline, baseline lookup and the latest score per patient.
            models.Index(fields=["patient", "-taken_at"], name="phq9_patient_taken_idx"),
            # Outcomes: a patient's latest PHQ-9 in a window with its total, from the index alone
            # (sessions/outcomes.py: pre-infusion, baseline and after-the-series scores).
            models.Index(fields=["patient", "-taken_at", "-id", "total"], name="phq9_patient_latest_idx"),
            # Safety inbox and re-alerts: item-9 answers nobody has acknowledged yet.
            models.Index(
                fields=["taken_at"],
                condition=Q(item_9__gt=0, safety_acknowledged_at__isnull=True),
                name="phq9_unacknowledged_idx",
            ),
        ]
        constraints = [
            *(
                models.CheckConstraint(condition=Q(**{f"{item}__range": (0, 3)}), name=f"phq9_{item}_range")
                for item in ITEM_FIELDS
            ),
            models.CheckConstraint(
                condition=Q(difficulty="") | Q(difficulty__in=Difficulty.values), name="phq9_difficulty_valid"
            ),
            models.CheckConstraint(condition=Q(source__in=PHQ9Source.values), name="phq9_source_valid"),
            models.CheckConstraint(
                condition=Q(safety_acknowledged_at__isnull=True, safety_acknowledged_by__isnull=True, safety_action="")
                | Q(
                    item_9__gt=0,
                    safety_acknowledged_at__isnull=False,
                    safety_acknowledged_by__isnull=False,
                )
                & ~Q(safety_action=""),
                name="phq9_acknowledgement_complete",
                violation_error_message=(
                    "An acknowledgement needs an item-9 answer above 0, who acknowledged it, when, "
                    "and the action taken."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"PHQ-9 {self.patient.mrn} {timezone.localtime(self.taken_at):%Y-%m-%d}"

    @property
    def items(self) -> tuple[int, ...]:
        return tuple(getattr(self, field) for field in ITEM_FIELDS)

    @property
    def severity(self) -> Severity:
        return severity_for_total(self.total)

    @property
    def has_safety_flag(self) -> bool:
        """Item 9 above 0 is a safety event whatever the total."""
        return (getattr(self, SAFETY_ITEM) or 0) > 0

    @property
    def needs_acknowledgement(self) -> bool:
        return self.has_safety_flag and self.safety_acknowledged_at is None

    def clean(self) -> None:
        if self.taken_at and self.taken_at > timezone.now() + dt.timedelta(minutes=5):
            raise ValidationError({"taken_at": "A PHQ-9 cannot be taken in the future."})
