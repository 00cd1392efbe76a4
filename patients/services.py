"""Write workflows for patients and PHQ-9s. Views, the API, the admin and tasks call these."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from clinic.db import validate_and_save
from patients import access
from patients.models import MAX_WEIGHT_KG, MIN_WEIGHT_KG, Patient, PHQ9Assessment, PHQ9Source
from patients.phq9 import ITEM_FIELDS


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
    return assessment


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
