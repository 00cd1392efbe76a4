"""Raising in-app notifications: who is told about what.

Kept apart from the services so that any app's services can raise a notification
without importing the others' workflows.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.utils import timezone

from maintenance.models import Notification, NotificationKind
from patients import access
from patients.access import Role
from patients.models import Patient


def active_users_with_role(role: Role):
    return get_user_model().objects.filter(is_active=True, groups__name=role.value).distinct()


def clinicians_for(patient: Patient, *, everyone_on_duty: bool = False) -> list:
    """The patient's clinician, and with ``everyone_on_duty`` every active clinician."""
    recipients = {}
    primary = patient.primary_clinician
    if primary is not None and access.is_clinician(primary):
        recipients[primary.pk] = primary
    if everyone_on_duty or not recipients:
        for user in active_users_with_role(Role.CLINICIAN):
            recipients.setdefault(user.pk, user)
    return list(recipients.values())


def notify(
    *,
    recipients: Iterable,
    kind: NotificationKind,
    title: str,
    body: str = "",
    patient: Patient | None = None,
    link: str = "",
    subject_id=None,
) -> list[Notification]:
    """One unread notification for each recipient (duplicates in ``recipients`` count once)."""
    unique = {user.pk: user for user in recipients}
    return Notification.objects.bulk_create(
        Notification(
            recipient=user, kind=kind, title=title, body=body, patient=patient, link=link, subject_id=subject_id
        )
        for user in unique.values()
    )


def resolve(*, subject_id, kind: NotificationKind) -> int:
    """Mark every unread notification of ``kind`` about ``subject_id`` read (it was dealt with)."""
    return Notification.objects.filter(subject_id=subject_id, kind=kind, read_at__isnull=True).update(
        read_at=timezone.now()
    )
