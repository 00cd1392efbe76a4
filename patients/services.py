"""Write workflows for patients and PHQ-9s. Views, the API, the admin and tasks call these."""

from __future__ import annotations

import datetime as dt
import smtplib
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from clinic.db import validate_and_save
from patients import access
from patients.models import MAX_WEIGHT_KG, MIN_WEIGHT_KG, Patient, PHQ9Assessment, PHQ9Source
from patients.phq9 import ITEM_FIELDS, SAFETY_ITEM


@transaction.atomic
def phq9_record(
    *,
    patient: Patient,
    answers: Mapping[str, int | None],
    difficulty: str = "",
    taken_at: dt.datetime | None = None,
    source: str = PHQ9Source.CLINIC,
    entered_by=None,
) -> PHQ9Assessment:
    """Store a complete PHQ-9. ``answers`` maps ``item_1`` ... ``item_9`` to 0-3.

    An incomplete or out-of-range form raises ``ValidationError`` (keyed by item) and
    stores nothing. Clinicians enter forms for the clinic; a patient enters only their
    own, through the portal.
    """
    if source == PHQ9Source.PORTAL:
        allowed = (
            entered_by is not None
            and access.has_role(entered_by, access.Role.PATIENT)
            and (patient.user_id is not None and patient.user_id == entered_by.pk)
        )
    else:
        allowed = entered_by is not None and access.can_record_clinical(entered_by, patient)
    if not allowed:
        raise PermissionDenied("You cannot enter a PHQ-9 for this patient.")
    if source == PHQ9Source.PORTAL:
        # One portal PHQ-9 at a time per patient (the row lock), at most once a day, except
        # that an item-9 answer above 0 is always recorded: a safety event is never dropped.
        Patient.objects.select_for_update().filter(pk=patient.pk).first()
        if not (isinstance(answers.get(SAFETY_ITEM), int) and answers[SAFETY_ITEM] > 0):
            portal_phq9_check(patient=patient)
    unknown = set(answers) - set(ITEM_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown PHQ-9 items: {', '.join(sorted(unknown))}.")
    # Whole numbers only: Django would quietly turn 2.7 into 2 and True into 1.
    not_whole = [f for f in ITEM_FIELDS if answers.get(f) is not None and type(answers[f]) is not int]
    if not_whole:
        raise ValidationError(dict.fromkeys(not_whole, "Choose one of the answers 0-3."))
    assessment = PHQ9Assessment(
        patient=patient,
        difficulty=difficulty or "",
        taken_at=taken_at or timezone.now(),
        source=source,
        entered_by=entered_by,
        **{field: answers.get(field) for field in ITEM_FIELDS},
    )
    validate_and_save(assessment)
    assessment.refresh_from_db(fields=["total"])
    from maintenance import reminders

    if assessment.has_safety_flag:
        reminders.raise_safety_alert(assessment)
    reminders.raise_symptom_trigger(assessment)
    return assessment


def portal_phq9_next_day(patient: Patient) -> dt.date | None:
    """The first day the patient may fill in the PHQ-9 in the portal again (None: now)."""
    latest = patient.phq9_assessments.filter(source=PHQ9Source.PORTAL).order_by("-taken_at").first()
    if latest is None:
        return None
    next_day = timezone.localdate(latest.taken_at) + dt.timedelta(days=settings.CLINIC_PORTAL_PHQ9_MIN_DAYS)
    return next_day if next_day > timezone.localdate() else None


def portal_phq9_check(*, patient: Patient) -> None:
    """At most one portal PHQ-9 every CLINIC_PORTAL_PHQ9_MIN_DAYS (default: once a day)."""
    next_day = portal_phq9_next_day(patient)
    if next_day is not None:
        raise ValidationError(
            "You have already filled in the questionnaire recently. "
            f"You can fill it in again from {next_day:%A} {next_day.day} {next_day:%B}."
        )


def phq9_acknowledge_safety(*, assessment: PHQ9Assessment, by, action: str) -> PHQ9Assessment:
    """A clinician acknowledges an item-9 safety event, recording the action taken.

    Claimed with a conditional UPDATE so two clinicians acknowledging at once record
    one acknowledgement, not two.
    """
    if not access.can_record_clinical(by, assessment.patient):
        raise PermissionDenied("Only a clinician can acknowledge a safety alert.")
    action = (action or "").strip()
    if not action:
        raise ValidationError({"safety_action": "Describe the action taken."})
    if not assessment.has_safety_flag:
        raise ValidationError("This PHQ-9 has no safety flag to acknowledge (item 9 was 0).")
    now = timezone.now()
    claimed = PHQ9Assessment.objects.filter(pk=assessment.pk, item_9__gt=0, safety_acknowledged_at__isnull=True).update(
        safety_acknowledged_at=now, safety_acknowledged_by=by, safety_action=action, updated_at=now
    )
    if claimed != 1:
        raise ValidationError("This safety alert has already been acknowledged.")
    from maintenance.models import NotificationKind, ReminderKind
    from maintenance.notify import resolve
    from maintenance.reminders import cancel_pending

    # The alert is dealt with: it leaves every clinician's unread inbox, and is not repeated.
    resolve(subject_id=assessment.pk, kind=NotificationKind.SAFETY_ALERT)
    cancel_pending(kind=ReminderKind.SAFETY_ALERT, subject_id=assessment.pk)
    assessment.refresh_from_db()
    return assessment


def parse_weight_kg(value: Decimal | str | float | None, *, field: str = "weight_kg") -> Decimal:
    """A body weight in kg to 0.1 kg, or a ValidationError naming ``field``."""
    try:
        weight = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError({field: "Enter the weight in kilograms, e.g. 72.5."}) from None
    if not weight.is_finite() or not MIN_WEIGHT_KG <= weight <= MAX_WEIGHT_KG:
        raise ValidationError({field: f"Enter a weight between {MIN_WEIGHT_KG} and {MAX_WEIGHT_KG} kg."})
    return weight.quantize(Decimal("0.1"))


def patient_record_weight(
    *, patient: Patient, weight_kg: Decimal | str | float, recorded_on: dt.date | None = None
) -> Patient:
    """Record the patient's current weight (kg) with the date it was measured."""
    patient.weight_kg = parse_weight_kg(weight_kg)
    patient.weight_recorded_on = recorded_on or timezone.localdate()
    try:
        validate_and_save(patient, update_fields=["weight_kg", "weight_recorded_on", "updated_at"])
    except ValidationError:
        patient.refresh_from_db(fields=["weight_kg", "weight_recorded_on"])
        raise
    return patient


def patient_save(*, patient: Patient, by) -> Patient:
    """Register a new patient or save changes to one (clinic staff only)."""
    if not access.is_staff_member(by):
        raise PermissionDenied("Only clinic staff can register or change patients.")
    validate_and_save(patient)
    return patient


@transaction.atomic
def patient_invite_to_portal(*, patient: Patient, by, set_password_url: Callable[[str, str], str]) -> User:
    """Give the patient a portal account and email a one-time link to set its password.

    ``set_password_url(uidb64, token)`` builds the absolute link. The token is Django's
    password-reset token: it works once (setting the password invalidates it) and
    expires after PASSWORD_RESET_TIMEOUT. The email carries no clinical detail.
    """
    if not access.is_staff_member(by):
        raise PermissionDenied("Only clinic staff can invite patients to the portal.")
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    if not patient.email:
        raise ValidationError({"email": "Add the patient's email address before inviting them."})
    user = patient.user
    if user is not None and user.has_usable_password():
        raise ValidationError("This patient already has a portal account.")
    username = patient.email.lower()
    others = User.objects.filter(username__iexact=username)
    if user is not None:
        others = others.exclude(pk=user.pk)
    if others.exists():
        raise ValidationError({"email": "Another account already uses this email address."})
    if user is not None:
        # Invited again before setting a password: the login follows the current address.
        user.username, user.email = username, patient.email
        user.save(update_fields=["username", "email"])
    else:
        user = User(username=username, email=patient.email, first_name=patient.first_name, last_name=patient.last_name)
        user.set_unusable_password()
        user.save()
        user.groups.add(Group.objects.get_or_create(name=access.Role.PATIENT.value)[0])
        patient.user = user
        patient.save(update_fields=["user", "updated_at"])
    link = set_password_url(urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user))
    try:
        _send_invitation(patient, link)
    except (OSError, smtplib.SMTPException):
        # Nothing is kept: the account is rolled back with the transaction.
        raise ValidationError("The invitation email could not be sent; try again later.") from None
    return user


def _send_invitation(patient: Patient, link: str) -> None:
    send_mail(
        subject=f"Your {settings.CLINIC_NAME} patient portal",
        message=(
            f"Hello {patient.first_name},\n\n"
            f"{settings.CLINIC_NAME} has invited you to its patient portal, where you can follow your progress "
            "and your appointments.\n\n"
            f"Choose your password here (the link works once):\n{link}\n\n"
            "If you did not expect this message, you can ignore it."
        ),
        from_email=None,
        recipient_list=[patient.email],
    )
