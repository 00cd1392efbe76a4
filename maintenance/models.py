"""Maintenance plans, booster appointments and the reminder rows Celery sends."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from clinic.db import PublicModel
from clinic.encryption import EncryptedTextField
from patients.models import Patient, PatientStatus
from sessions.models import InfusionSession, Protocol, SessionKind

MIN_INTERVAL_DAYS = 7
MAX_INTERVAL_DAYS = 365


def default_trigger_threshold() -> int:
    return settings.CLINIC_TRIGGER_PHQ9_THRESHOLD


def default_trigger_rise() -> int:
    return settings.CLINIC_TRIGGER_PHQ9_RISE


class BoosterStage(models.TextChoices):
    NOT_YET_DUE = "not_yet_due", "Not yet due"
    DUE_SOON = "due_soon", "Due soon"
    DUE = "due", "Due"
    OVERDUE = "overdue", "Overdue"


@dataclass(frozen=True)
class BoosterDue:
    """When the next booster is due and where today stands."""

    last_infusion_on: dt.date
    due_on: dt.date
    #: the last day the booster is "due" rather than "overdue".
    due_until: dt.date
    stage: BoosterStage
    #: positive before the due date, negative after it.
    days_until_due: int


def _interval_field(verbose_name: str, **kwargs) -> models.PositiveSmallIntegerField:
    return models.PositiveSmallIntegerField(
        verbose_name,
        validators=[MinValueValidator(MIN_INTERVAL_DAYS), MaxValueValidator(MAX_INTERVAL_DAYS)],
        **kwargs,
    )


class MaintenancePlanQuerySet(models.QuerySet):
    def in_force(self) -> MaintenancePlanQuerySet:
        """Plans whose boosters are due and reminded: see ``MaintenancePlan.is_in_force``."""
        return self.filter(is_active=True, patient__status=PatientStatus.ACTIVE)


class MaintenancePlan(PublicModel):
    """How often a patient's boosters should come, and what brings one forward.

    Intervals are in days from the last infusion. The booster is *due* from the target
    interval until the maximum (or, without a maximum, for CLINIC_BOOSTER_OVERDUE_GRACE_DAYS),
    then *overdue*. A symptom trigger brings the due date forward, but never before the
    minimum interval.
    """

    patient = models.OneToOneField(Patient, on_delete=models.PROTECT, related_name="maintenance_plan")
    protocol = models.ForeignKey(
        Protocol, on_delete=models.PROTECT, related_name="+", help_text="Route and dose of each booster."
    )
    target_interval_days = _interval_field("target interval (days)", default=28)
    min_interval_days = _interval_field("minimum interval (days)", null=True, blank=True)
    max_interval_days = _interval_field("maximum interval (days)", null=True, blank=True)
    trigger_phq9_threshold = models.PositiveSmallIntegerField(
        "trigger: PHQ-9 at or above",
        null=True,
        blank=True,
        default=default_trigger_threshold,
        validators=[MinValueValidator(1), MaxValueValidator(27)],
        help_text="Leave empty to turn this trigger off.",
    )
    trigger_phq9_rise = models.PositiveSmallIntegerField(
        "trigger: PHQ-9 rise over the post-induction low (points)",
        null=True,
        blank=True,
        default=default_trigger_rise,
        validators=[MinValueValidator(1), MaxValueValidator(27)],
        help_text="Leave empty to turn this trigger off.",
    )
    is_active = models.BooleanField(default=True)
    notes = EncryptedTextField("scheduling notes", blank=True)  # encrypted at rest

    objects = MaintenancePlanQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(target_interval_days__range=(MIN_INTERVAL_DAYS, MAX_INTERVAL_DAYS)),
                name="plan_target_range",
            ),
            models.CheckConstraint(
                condition=Q(min_interval_days__isnull=True)
                | Q(min_interval_days__gte=MIN_INTERVAL_DAYS, min_interval_days__lte=F("target_interval_days")),
                name="plan_min_not_above_target",
                violation_error_message="The minimum interval cannot be longer than the target.",
            ),
            models.CheckConstraint(
                condition=Q(max_interval_days__isnull=True)
                | Q(max_interval_days__lte=MAX_INTERVAL_DAYS, max_interval_days__gte=F("target_interval_days")),
                name="plan_max_not_below_target",
                violation_error_message="The maximum interval cannot be shorter than the target.",
            ),
            models.CheckConstraint(
                condition=Q(trigger_phq9_threshold__isnull=True) | Q(trigger_phq9_threshold__range=(1, 27)),
                name="plan_trigger_threshold_range",
            ),
            models.CheckConstraint(
                condition=Q(trigger_phq9_rise__isnull=True) | Q(trigger_phq9_rise__range=(1, 27)),
                name="plan_trigger_rise_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Maintenance plan for {self.patient}"

    @property
    def is_in_force(self) -> bool:
        """Boosters follow the plan while it is active and the patient is active (not on
        hold, not discharged); the same rule as ``MaintenancePlanQuerySet.in_force``."""
        return self.is_active and self.patient.status == PatientStatus.ACTIVE

    def clean(self) -> None:
        errors = {}
        if self.target_interval_days and self.min_interval_days and self.min_interval_days > self.target_interval_days:
            errors["min_interval_days"] = "The minimum interval cannot be longer than the target."
        if self.target_interval_days and self.max_interval_days and self.max_interval_days < self.target_interval_days:
            errors["max_interval_days"] = "The maximum interval cannot be shorter than the target."
        if errors:
            raise ValidationError(errors)

    def trigger_reason(self, *, total: int, post_induction_low: int | None) -> str | None:
        """Why a PHQ-9 total (0-27) should bring the next booster forward, or None."""
        if self.trigger_phq9_threshold is not None and total >= self.trigger_phq9_threshold:
            return f"PHQ-9 {total} is at or above {self.trigger_phq9_threshold}"
        if (
            self.trigger_phq9_rise is not None
            and post_induction_low is not None
            and total - post_induction_low >= self.trigger_phq9_rise
        ):
            rise = total - post_induction_low
            return f"PHQ-9 {total} is {rise} points above the post-induction low of {post_induction_low}"
        return None

    def due_status(
        self,
        *,
        last_infusion_on: dt.date,
        today: dt.date,
        triggered_on: dt.date | None = None,
    ) -> BoosterDue:
        """The booster's due date and stage on ``today``.

        ``last_infusion_on`` is the clinic-local day of the last completed infusion;
        ``triggered_on`` the day a symptom trigger fired since then, if any. "Due soon"
        starts CLINIC_BOOSTER_LEAD_DAYS (default 7) before the due date.
        """
        due_on = last_infusion_on + dt.timedelta(days=self.target_interval_days)
        if triggered_on is not None:
            earliest = last_infusion_on + dt.timedelta(days=self.min_interval_days or 0)
            due_on = min(due_on, max(triggered_on, earliest))
        if self.max_interval_days is not None:
            grace = self.max_interval_days - self.target_interval_days
        else:
            grace = settings.CLINIC_BOOSTER_OVERDUE_GRACE_DAYS
        due_until = due_on + dt.timedelta(days=grace)
        lead = dt.timedelta(days=settings.CLINIC_BOOSTER_LEAD_DAYS)
        if today < due_on - lead:
            stage = BoosterStage.NOT_YET_DUE
        elif today < due_on:
            stage = BoosterStage.DUE_SOON
        elif today <= due_until:
            stage = BoosterStage.DUE
        else:
            stage = BoosterStage.OVERDUE
        return BoosterDue(last_infusion_on, due_on, due_until, stage, (due_on - today).days)


class BoosterAppointmentManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(kind=SessionKind.BOOSTER)


class BoosterAppointment(InfusionSession):
    """A booster infusion: an infusion session of kind "booster", booked by the scheduler."""

    objects = BoosterAppointmentManager()

    class Meta:
        proxy = True
        ordering = ["-scheduled_at"]


class ReminderKind(models.TextChoices):
    BOOSTER_STAGE = "booster_stage", "Booster reached a new stage"
    SYMPTOM_TRIGGER = "symptom_trigger", "Symptom trigger fired"
    SAFETY_ALERT = "safety_alert", "Item-9 safety alert"
    PATIENT_APPOINTMENT = "patient_appointment", "Appointment reminder to the patient"


class ReminderChannel(models.TextChoices):
    IN_APP = "in_app", "In-app notification"
    EMAIL = "email", "Email"


class ReminderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Reminder(PublicModel):
    """One message that must go out exactly once.

    The unique constraint names what must not happen twice: this kind of message about
    this subject (and stage, and repeat), to this person, by this channel. The subject is
    the record it is about: for a booster stage, the last infusion the due date counts
    from (a new infusion starts a new cycle); for a trigger or a safety alert, the PHQ-9;
    for a patient's reminder, the appointment. The dispatcher claims rows with
    SELECT ... FOR UPDATE SKIP LOCKED and marks them sent in the same transaction as the
    delivery, so two workers never send one reminder twice and a crash loses nothing.
    """

    kind = models.CharField(max_length=24, choices=ReminderKind.choices)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="reminders")
    subject_id = models.UUIDField(help_text="The record the reminder is about.")
    stage = models.CharField(max_length=16, choices=BoosterStage.choices, blank=True)
    repeat = models.PositiveIntegerField(
        default=0,
        help_text="0 the first time, then each repeat; for a patient's appointment, the appointment's day "
        "(date ordinal), so a moved appointment is reminded again.",
    )
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reminders")
    channel = models.CharField(max_length=8, choices=ReminderChannel.choices)
    title = models.CharField(max_length=200, help_text="In-app only: emails carry no clinical detail.")
    body = models.TextField(blank=True)
    link = models.CharField(max_length=300, blank=True)
    send_after = models.DateTimeField()
    status = models.CharField(max_length=10, choices=ReminderStatus.choices, default=ReminderStatus.PENDING)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-send_after"]
        indexes = [
            # Dispatcher: pending reminders whose time has come, oldest first.
            models.Index(fields=["send_after"], condition=Q(status="pending"), name="reminder_pending_idx"),
            # Acknowledging an alert cancels its pending repeats; the patient page lists them.
            models.Index(fields=["subject_id", "kind"], name="reminder_subject_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject_id", "stage", "repeat", "recipient", "channel"],
                name="reminder_once",
                violation_error_message="This reminder already exists.",
            ),
            models.CheckConstraint(condition=Q(kind__in=ReminderKind.values), name="reminder_kind_valid"),
            models.CheckConstraint(
                condition=Q(stage="") | Q(kind=ReminderKind.BOOSTER_STAGE, stage__in=BoosterStage.values),
                name="reminder_stage_only_for_boosters",
            ),
            models.CheckConstraint(condition=Q(channel__in=ReminderChannel.values), name="reminder_channel_valid"),
            models.CheckConstraint(condition=Q(status__in=ReminderStatus.values), name="reminder_status_valid"),
            models.CheckConstraint(
                condition=~Q(status=ReminderStatus.SENT) | Q(sent_at__isnull=False), name="reminder_sent_has_time"
            ),
            models.CheckConstraint(
                condition=Q(link="") | (Q(link__startswith="/") & ~Q(link__startswith="//")),
                name="reminder_link_internal",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.recipient} ({self.get_channel_display()})"


class JobRun(models.Model):
    """When a periodic job last finished: shows staff that the reminder system is alive."""

    name = models.CharField(max_length=50, primary_key=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.name


class NotificationKind(models.TextChoices):
    SAFETY_ALERT = "safety_alert", "PHQ-9 item-9 safety alert"
    VITALS_ALERT = "vitals_alert", "Vital signs past a threshold"
    BOOSTER_STAGE = "booster_stage", "Booster due"
    SYMPTOM_TRIGGER = "symptom_trigger", "Symptom trigger"


class NotificationQuerySet(models.QuerySet):
    def unread(self) -> NotificationQuerySet:
        return self.filter(read_at__isnull=True)


class Notification(PublicModel):
    """An in-app message in a staff member's inbox (raised by the safety rules and Celery)."""

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=24, choices=NotificationKind.choices)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    #: Where the message leads (a path inside the application).
    link = models.CharField(max_length=300, blank=True)
    #: The record the message is about (a PHQ-9 assessment, an infusion session), so that
    #: resolving it (acknowledging an alert) can resolve its notifications.
    subject_id = models.UUIDField(null=True, blank=True, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Header badge and inbox: a user's unread notifications, newest first.
            models.Index(
                fields=["recipient", "-created_at"], condition=Q(read_at__isnull=True), name="notification_unread_idx"
            ),
            # Inbox: all of a user's notifications, newest first.
            models.Index(fields=["recipient", "-created_at"], name="notification_inbox_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=NotificationKind.values), name="notification_kind_valid"),
            models.CheckConstraint(
                # A path inside the application: not "//host" or "/\\host", which browsers treat as another site.
                condition=Q(link="")
                | (Q(link__startswith="/") & ~Q(link__startswith="//") & ~Q(link__startswith="/\\")),
                name="notification_link_internal",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} -> {self.recipient}"
