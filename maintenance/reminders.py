"""Reminders that are never lost and never sent twice.

Three parts, each with one job:

- ``scan_reminders`` (Celery beat, every minute) looks at the clinic and inserts the
  reminder rows that are due: booster stages, overdue repeats, item-9 re-alerts and
  patients' appointment emails. Inserts ignore conflicts with the unique constraint, so
  scanning twice, or in two workers at once, creates nothing twice.
- ``dispatch_reminders`` claims pending rows one at a time with
  ``SELECT ... FOR UPDATE SKIP LOCKED`` and delivers each in the transaction that marks
  it sent: an in-app notification is exactly once; an email is sent at least once and,
  unless the worker dies between the SMTP call and the commit, exactly once. A worker
  killed mid-batch leaves the rest pending for the next run; a failed email is retried
  with backoff.
- ``raise_alert`` is for events that cannot wait for the scan (an item-9 answer, a
  symptom trigger): in-app notifications at once, in the same transaction as the event,
  emails through the dispatcher, nudged on commit. If the broker is down the nudge is
  skipped and the next beat delivers: no page ever waits on Redis.

Emails carry no clinical detail, only that something needs attention and a link.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Value
from django.urls import reverse
from django.utils import timezone

from maintenance import booster_scan
from maintenance.models import (
    BoosterStage,
    JobRun,
    Notification,
    NotificationKind,
    Reminder,
    ReminderChannel,
    ReminderKind,
    ReminderStatus,
)
from maintenance.notify import active_users_with_role, clinicians_for
from maintenance.selectors import STAGE_ORDER
from patients import access
from patients.models import Patient, PatientStatus, PHQ9Assessment
from sessions.models import InfusionSession, SessionKind, SessionStatus
from sessions.scheduling import clinic_datetime

logger = logging.getLogger(__name__)

SCAN_JOB = "reminder-scan"
DISPATCH_JOB = "reminder-dispatch"
#: Stages staff are told about (not "not yet due").
REMINDED_STAGES = (BoosterStage.DUE_SOON, BoosterStage.DUE, BoosterStage.OVERDUE)

#: What each kind of reminder shows in the inbox.
NOTIFICATION_KIND = {
    ReminderKind.BOOSTER_STAGE: NotificationKind.BOOSTER_STAGE,
    ReminderKind.SYMPTOM_TRIGGER: NotificationKind.SYMPTOM_TRIGGER,
    ReminderKind.SAFETY_ALERT: NotificationKind.SAFETY_ALERT,
}

#: What an email says: never a name, a drug, a dose or a score.
EMAIL_TEXT = {
    ReminderKind.BOOSTER_STAGE: ("A booster needs scheduling", "A patient's booster needs scheduling."),
    ReminderKind.SYMPTOM_TRIGGER: ("A booster should come forward", "A patient's booster should come forward."),
    ReminderKind.SAFETY_ALERT: ("Safety alert: please log in", "A safety alert needs a clinician's attention now."),
    ReminderKind.PATIENT_APPOINTMENT: ("Your upcoming appointment", "You have an upcoming appointment."),
}


def _send_time() -> dt.time:
    return dt.time.fromisoformat(settings.CLINIC_REMINDER_SEND_TIME)


def _with_email(users: Iterable) -> list:
    return [user for user in users if user.email]


@dataclass(frozen=True)
class Message:
    title: str
    body: str = ""
    link: str = ""


def _rows(
    *,
    kind: ReminderKind,
    patient: Patient,
    subject_id,
    recipients: Iterable,
    message: Message,
    send_after: dt.datetime,
    stage: str = "",
    repeat: int = 0,
    channels: Iterable[ReminderChannel] = (ReminderChannel.IN_APP, ReminderChannel.EMAIL),
) -> list[Reminder]:
    rows = []
    for user in {user.pk: user for user in recipients}.values():
        for channel in channels:
            if channel == ReminderChannel.EMAIL and not user.email:
                continue
            rows.append(
                Reminder(
                    kind=kind,
                    patient=patient,
                    subject_id=subject_id,
                    stage=stage,
                    repeat=repeat,
                    recipient=user,
                    channel=channel,
                    title=message.title,
                    body=message.body,
                    link=message.link,
                    send_after=send_after,
                )
            )
    return rows


#: The columns ``_values`` fills, in order; the others take their defaults (see ``_insert_values``).
_COLUMNS = (
    "kind", "patient_id", "subject_id", "stage", "repeat", "recipient_id", "channel",
    "title", "body", "link", "send_after",
)  # fmt: skip


def _values(
    *,
    kind: ReminderKind,
    patient_id,
    subject_id,
    recipient_ids: Iterable[int],
    emailable: Collection[int],
    message: Message,
    send_after: dt.datetime,
    stage: str = "",
    repeat: int = 0,
) -> list[tuple]:
    """The rows of ``_rows`` by user id, as tuples of ``_COLUMNS`` (no model instance per
    row): in-app to each recipient, and email to those in ``emailable``."""
    values = []
    for pk in dict.fromkeys(recipient_ids):
        for channel in (ReminderChannel.IN_APP, ReminderChannel.EMAIL):
            if channel == ReminderChannel.EMAIL and pk not in emailable:
                continue
            values.append(
                (str(kind), patient_id, subject_id, str(stage), repeat, pk, str(channel),
                 message.title, message.body, message.link, send_after)
            )  # fmt: skip
    return values


def _insert(rows: list[Reminder]) -> int:
    """Insert what does not exist yet; the unique constraint makes this idempotent."""
    return _insert_values([tuple(getattr(row, column) for column in _COLUMNS) for row in rows])


def _insert_values(values: list[tuple]) -> int:
    """Insert the rows ``values`` (tuples of ``_COLUMNS``) that do not exist yet, in one
    statement; the unique constraint makes this idempotent. Returns how many were new.

    On PostgreSQL: INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING, whose row
    count is the rows created (not a count of the whole table before and after).
    """
    if not values:
        return 0
    if connection.vendor != "postgresql":
        rows = [Reminder(**dict(zip(_COLUMNS, row, strict=True))) for row in values]
        before = Reminder.objects.count()
        Reminder.objects.bulk_create(rows, ignore_conflicts=True)
        return Reminder.objects.count() - before
    meta = Reminder._meta
    column = {field.attname: field.column for field in meta.concrete_fields}
    types = {field.attname: field.db_type(connection) for field in meta.concrete_fields}
    now = timezone.now()
    defaults = {
        "id": "gen_random_uuid()",
        "created_at": "%(now)s",
        "updated_at": "%(now)s",
        "status": "%(pending)s",
        "sent_at": "NULL",
        "attempts": "0",
        "last_error": "''",
    }
    names = [*defaults, *_COLUMNS]
    arrays = ", ".join(f"%({name})s::{types[name]}[]" for name in _COLUMNS)
    params = {name: list(array) for name, array in zip(_COLUMNS, zip(*values, strict=True), strict=True)}
    params.update(now=now, pending=str(ReminderStatus.PENDING))
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} "
        f"({', '.join(connection.ops.quote_name(column[name]) for name in names)}) "
        f"SELECT {', '.join(defaults.values())}, {', '.join(f'v.{name}' for name in _COLUMNS)} "
        f"FROM unnest({arrays}) AS v({', '.join(_COLUMNS)}) "
        "ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


# --- Immediate alerts ---------------------------------------------------------------


def raise_alert(
    *,
    kind: ReminderKind,
    patient: Patient,
    subject_id,
    recipients: Iterable,
    message: Message,
    repeat: int = 0,
) -> None:
    """Tell ``recipients`` now: in-app in this transaction, email via the dispatcher."""
    now = timezone.now()
    rows = _rows(
        kind=kind, patient=patient, subject_id=subject_id, recipients=recipients, message=message,
        send_after=now, repeat=repeat,
    )  # fmt: skip
    in_app = [row for row in rows if row.channel == ReminderChannel.IN_APP]
    for row in in_app:
        row.status, row.sent_at = ReminderStatus.SENT, now
    Reminder.objects.bulk_create(rows, ignore_conflicts=True)
    # Notifications only for the in-app rows this call created (a conflict means an
    # earlier call already told that person).
    created = Reminder.objects.filter(
        kind=kind, subject_id=subject_id, repeat=repeat, channel=ReminderChannel.IN_APP, sent_at=now
    ).select_related("recipient")
    Notification.objects.bulk_create(_notification(row) for row in created)
    nudge_dispatcher()


def _notification(reminder: Reminder) -> Notification:
    return Notification(
        recipient=reminder.recipient,
        kind=NOTIFICATION_KIND[reminder.kind],
        title=reminder.title,
        body=reminder.body,
        patient=reminder.patient,
        link=reminder.link,
        subject_id=reminder.subject_id,
    )


def cancel_pending(*, kind: ReminderKind, subject_id) -> int:
    """What was dealt with is not reminded again."""
    return Reminder.objects.filter(kind=kind, subject_id=subject_id, status=ReminderStatus.PENDING).update(
        status=ReminderStatus.CANCELLED
    )


def nudge_dispatcher() -> None:
    """Ask a worker to dispatch right after this transaction commits; never fail or wait
    because the broker is down (the beat dispatches every minute anyway)."""

    def send() -> None:
        from maintenance.tasks import dispatch

        try:
            dispatch.apply_async(retry=False)
        except Exception:
            logger.warning("Broker unavailable: pending reminders go out on the next scheduled dispatch.")

    transaction.on_commit(send)


# --- Safety alerts and symptom triggers ----------------------------------------------


def safety_message(assessment: PHQ9Assessment, *, repeat: int) -> Message:
    patient = assessment.patient
    again = f" (reminder {repeat})" if repeat else ""
    via = "in the portal" if assessment.source == "portal" else "at the clinic"
    return Message(
        title=f"Safety alert: {patient.full_name} answered item 9{again}",
        body=f"PHQ-9 {assessment.total} ({assessment.severity.label}) entered {via}, item 9 "
        f"“{assessment.get_item_9_display().lower()}”. A clinician must acknowledge it with the action taken.",
        link=patient.get_absolute_url(),
    )


def raise_safety_alert(assessment: PHQ9Assessment) -> None:
    """Item 9 above 0: the patient's clinician and every clinician on duty, at once."""
    raise_alert(
        kind=ReminderKind.SAFETY_ALERT,
        patient=assessment.patient,
        subject_id=assessment.pk,
        recipients=clinicians_for(assessment.patient, everyone_on_duty=True),
        message=safety_message(assessment, repeat=0),
    )


def raise_symptom_trigger(assessment: PHQ9Assessment) -> None:
    """A new PHQ-9 meets the plan's trigger: the schedulers are told at once, with the scores."""
    from maintenance.selectors import booster_status

    status = booster_status(patient=assessment.patient)
    if status is None or status.trigger is None or status.trigger.assessment.pk != assessment.pk:
        return  # no plan in force, no trigger, or it had already fired on an earlier score
    patient = assessment.patient
    due = status.due
    raise_alert(
        kind=ReminderKind.SYMPTOM_TRIGGER,
        patient=patient,
        subject_id=assessment.pk,
        recipients=active_users_with_role(access.Role.SCHEDULER),
        message=Message(
            title=f"Bring {patient.full_name}'s booster forward",
            body=f"{status.trigger.reason} (taken {timezone.localtime(assessment.taken_at):%d %b}). "
            f"The booster is now due {due.due_on:%a %d %b %Y}.",
            link=patient.get_absolute_url(),
        ),
    )


# --- The scan -------------------------------------------------------------------------


def scan_reminders(*, now: dt.datetime | None = None) -> int:
    """Insert every reminder that is due now. Returns how many rows were new."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    created = _scan_boosters(today) + _scan_safety(now) + _scan_patient_appointments(today)
    JobRun.objects.update_or_create(name=SCAN_JOB, defaults={"last_success_at": timezone.now()})
    return created


def _scan_boosters(today: dt.date) -> int:
    """Booster stages (due soon, due, overdue and its repeats) of every plan in force with
    no booster booked, to the patient's clinician and every scheduler.

    On PostgreSQL one statement (``booster_scan.due_boosters``) finds the boosters whose
    reminders are missing, so the every-minute scan reads and writes nothing more once
    they exist; elsewhere the board's reader (``booster_statuses``) gives every booster
    and the unique constraint skips the reminders already made.
    """
    if connection.vendor == "postgresql":
        due = booster_scan.due_boosters(today=today, stages=REMINDED_STAGES, not_yet_reminded=True)
    else:
        from maintenance.selectors import booster_statuses

        due = booster_scan.from_statuses(
            status
            for status in booster_statuses(today=today, lean=True)
            if status.due.stage in REMINDED_STAGES and status.next_appointment is None
        )
    if not due:
        return 0
    recipients = _booster_recipients()
    send_after = clinic_datetime(today, _send_time())
    rows: list[tuple] = []
    # The board's order, most urgent first.
    for booster in sorted(due, key=lambda b: (STAGE_ORDER.index(b.stage), b.due_on, b.last_name, b.first_name)):
        repeat = booster.overdue_repeat(today)
        again = f" (reminder {repeat + 1})" if repeat else ""
        trigger = f" {booster.trigger_reason}." if booster.trigger_reason else ""
        rows += _values(
            kind=ReminderKind.BOOSTER_STAGE,
            patient_id=booster.patient_id,
            subject_id=booster.last_infusion_id,
            stage=booster.stage,
            repeat=repeat,
            recipient_ids=recipients.of(booster.primary_clinician_id),
            emailable=recipients.emailable,
            message=Message(
                title=f"Booster {booster.stage.label.lower()}: {booster.full_name}{again}",
                body=f"Due {booster.due_on:%a %d %b %Y}; last infusion {booster.last_infusion_on:%d %b %Y}.{trigger}",
                link=reverse("patients:detail", kwargs={"pk": booster.patient_id}),
            ),
            send_after=send_after,
        )
    return _insert_values(rows)


def _booster_recipients() -> booster_scan.Recipients:
    """Every active scheduler (``active_users_with_role``), and the users who may get their
    own patients' reminders (``access.is_clinician``: active, and in the clinicians' group
    or a superuser), in one query."""
    User = get_user_model()
    scheduler, clinician = access.Role.SCHEDULER.value, access.Role.CLINICIAN.value
    members = User.groups.through.objects.filter(group__name__in=(scheduler, clinician), user__is_active=True)
    superusers = User.objects.filter(is_active=True, is_superuser=True).annotate(role=Value(""))
    rows = members.values_list("user_id", "user__email", "group__name").union(
        superusers.values_list("pk", "email", "role"), all=True
    )
    schedulers, clinicians, emailable = set(), set(), set()
    for pk, email, role in rows:
        (schedulers if role == scheduler else clinicians).add(pk)
        if email:
            emailable.add(pk)
    return booster_scan.Recipients(
        schedulers=tuple(sorted(schedulers)), clinicians=frozenset(clinicians), emailable=frozenset(emailable)
    )


def _scan_safety(now: dt.datetime) -> int:
    """Item-9 alerts nobody acknowledged are raised again every CLINIC_SAFETY_REALERT_MINUTES."""
    interval = dt.timedelta(minutes=settings.CLINIC_SAFETY_REALERT_MINUTES)
    open_alerts = PHQ9Assessment.objects.filter(
        item_9__gt=0, safety_acknowledged_at__isnull=True, taken_at__lte=now - interval
    ).select_related("patient__primary_clinician")
    rows: list[Reminder] = []
    for assessment in open_alerts:
        # Counted from when the alert was raised (the row was created), not when the form was dated.
        raised = assessment.created_at
        repeat = int((now - raised) / interval)
        if repeat < 1:
            continue
        rows += _rows(
            kind=ReminderKind.SAFETY_ALERT,
            patient=assessment.patient,
            subject_id=assessment.pk,
            repeat=repeat,
            recipients=clinicians_for(assessment.patient, everyone_on_duty=True),
            message=safety_message(assessment, repeat=repeat),
            send_after=raised + repeat * interval,
        )
    return _insert(rows)


def _scan_patient_appointments(today: dt.date) -> int:
    """Patients who agreed get one email CLINIC_PATIENT_REMINDER_DAYS before a booster."""
    ahead = today + dt.timedelta(days=settings.CLINIC_PATIENT_REMINDER_DAYS)
    bookings = InfusionSession.objects.filter(
        kind=SessionKind.BOOSTER,
        status=SessionStatus.SCHEDULED,
        scheduled_on__range=(today, ahead),
        patient__accepts_email_reminders=True,
        patient__user__isnull=False,
    ).select_related("patient__user")
    rows: list[Reminder] = []
    for booking in bookings:
        day_before = booking.scheduled_on - dt.timedelta(days=settings.CLINIC_PATIENT_REMINDER_DAYS)
        rows += _rows(
            kind=ReminderKind.PATIENT_APPOINTMENT,
            patient=booking.patient,
            subject_id=booking.pk,
            # Keyed by the appointment's day too: a moved appointment is reminded again.
            repeat=booking.scheduled_on.toordinal(),
            recipients=[booking.patient.user],
            channels=(ReminderChannel.EMAIL,),
            message=Message(title="Upcoming appointment"),
            send_after=clinic_datetime(max(day_before, today), _send_time()),
        )
    return _insert(rows)


# --- The dispatcher --------------------------------------------------------------------


def dispatch_reminders(*, limit: int = 500) -> int:
    """Deliver pending reminders whose time has come, one row per transaction."""
    sent = 0
    for _ in range(limit):
        outcome = _dispatch_one()
        if outcome is None:
            break
        sent += outcome
    JobRun.objects.update_or_create(name=DISPATCH_JOB, defaults={"last_success_at": timezone.now()})
    return sent


@transaction.atomic
def _dispatch_one() -> int | None:
    """Claim and deliver one reminder. None when nothing is due; 1 if sent, 0 otherwise."""
    reminder = (
        # Lock only the reminder row (not the joined patient and user rows), so another
        # worker can deliver other reminders about the same patient meanwhile.
        Reminder.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(status=ReminderStatus.PENDING, send_after__lte=timezone.now())
        .select_related("recipient", "patient")
        .order_by("send_after")
        .first()
    )
    if reminder is None:
        return None
    # Claim it: a conditional UPDATE that must change exactly this one row. On PostgreSQL
    # the row is already ours (FOR UPDATE); on SQLite, which has no row locks, this is
    # what keeps a second worker from delivering the same reminder.
    claimed = Reminder.objects.filter(pk=reminder.pk, status=ReminderStatus.PENDING).update(updated_at=timezone.now())
    if claimed != 1:
        return 0
    if not _still_relevant(reminder):
        reminder.status = ReminderStatus.CANCELLED
        reminder.save(update_fields=["status", "updated_at"])
        return 0
    if _booked_since(reminder):
        reminder.send_after = timezone.now() + dt.timedelta(days=1)
        reminder.save(update_fields=["send_after", "updated_at"])
        return 0
    try:
        with transaction.atomic():  # a savepoint: a failed delivery leaves the row updatable
            if reminder.channel == ReminderChannel.IN_APP:
                _notification(reminder).save()
            else:
                _email(reminder)
    except SoftTimeLimitExceeded:
        raise  # the task is out of time: stop here; the row stays pending for the next run
    except Exception as error:  # a failed delivery is retried, never lost
        reminder.attempts += 1
        reminder.last_error = f"{type(error).__name__}: {error}"[:2000]
        if reminder.attempts >= settings.CLINIC_REMINDER_MAX_ATTEMPTS:
            reminder.status = ReminderStatus.FAILED
            logger.error("Reminder %s failed %s times; giving up.", reminder.pk, reminder.attempts)
        else:
            reminder.send_after = timezone.now() + dt.timedelta(minutes=2 ** (reminder.attempts - 1))
        reminder.save(update_fields=["attempts", "last_error", "status", "send_after", "updated_at"])
        return 0
    reminder.status, reminder.sent_at = ReminderStatus.SENT, timezone.now()
    reminder.attempts += 1
    reminder.save(update_fields=["status", "sent_at", "attempts", "updated_at"])
    return 1


def _recipient_still_right(reminder: Reminder) -> bool:
    """People change between the scan and the send: only current, active recipients."""
    user = reminder.recipient
    if not user.is_active:
        return False
    if reminder.kind == ReminderKind.PATIENT_APPOINTMENT:
        patient = reminder.patient
        return patient.user_id == user.pk and patient.accepts_email_reminders and patient.status == PatientStatus.ACTIVE
    if reminder.kind == ReminderKind.SAFETY_ALERT:
        return access.is_clinician(user)
    return access.is_staff_member(user)


def _still_relevant(reminder: Reminder) -> bool:
    """A safety alert acknowledged, or an appointment moved or cancelled, is not reminded."""
    if not _recipient_still_right(reminder):
        return False
    if reminder.kind == ReminderKind.SAFETY_ALERT:
        return PHQ9Assessment.objects.filter(pk=reminder.subject_id, safety_acknowledged_at__isnull=True).exists()
    if reminder.kind == ReminderKind.PATIENT_APPOINTMENT:
        return InfusionSession.objects.filter(pk=reminder.subject_id, status=SessionStatus.SCHEDULED).exists()
    if reminder.kind == ReminderKind.BOOSTER_STAGE:
        # A booster given since the scan starts a new cycle: this one is moot.
        return not InfusionSession.objects.filter(
            patient=reminder.patient_id,
            kind=SessionKind.BOOSTER,
            status=SessionStatus.COMPLETED,
            created_at__gt=reminder.created_at,
        ).exists()
    return True


def _booked_since(reminder: Reminder) -> bool:
    """A booster booked since the scan: hold the stage reminder (the booking may be cancelled)."""
    return (
        reminder.kind == ReminderKind.BOOSTER_STAGE
        and InfusionSession.objects.filter(
            patient=reminder.patient_id,
            kind=SessionKind.BOOSTER,
            status=SessionStatus.SCHEDULED,
            created_at__gt=reminder.created_at,
        ).exists()
    )


def _email(reminder: Reminder) -> None:
    subject, line = EMAIL_TEXT[ReminderKind(reminder.kind)]
    where = "the patient portal" if reminder.kind == ReminderKind.PATIENT_APPOINTMENT else "the clinic's system"
    # A patient's email goes to the address on their record today.
    address = reminder.patient.email if reminder.kind == ReminderKind.PATIENT_APPOINTMENT else ""
    send_mail(
        subject=f"{settings.CLINIC_NAME}: {subject}",
        message=f"{line}\n\nLog in to {where} to see it: {settings.CLINIC_BASE_URL}/\n",
        from_email=None,
        recipient_list=[address or reminder.recipient.email],
    )


# --- Health -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReminderHealth:
    last_scan_at: dt.datetime | None
    pending: int
    failed: int
    stale: bool


def reminder_health() -> ReminderHealth:
    run = JobRun.objects.filter(name=SCAN_JOB).first()
    last = run.last_success_at if run else None
    stale_after = dt.timedelta(minutes=settings.CLINIC_REMINDER_SCAN_STALE_MINUTES)
    due = Reminder.objects.filter(status=ReminderStatus.PENDING)
    return ReminderHealth(
        last_scan_at=last,
        pending=due.count(),
        failed=Reminder.objects.filter(status=ReminderStatus.FAILED).count(),
        stale=last is None or timezone.now() - last > stale_after,
    )
