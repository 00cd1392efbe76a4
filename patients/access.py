"""Who may see or change a patient's record: the one helper every view and API uses.

Roles are Django groups created by a migration (patients/migrations/0002_roles.py):

=============  ===============  ==================  ==================  ===================
role           view the record  change the record   view clinical data  record clinical data
=============  ===============  ==================  ==================  ===================
clinician      every patient    every patient       every patient       every patient
scheduler      every patient    every patient       no                  no
patient        their own only   no                  no                  no
superuser      every patient    every patient       every patient       every patient
auditor        no               no                  no                  no
=============  ===============  ==================  ==================  ===================

Auditors read the audit trail (audit/: who saw and who changed each record) and nothing
else; their group is created by audit/migrations/0002_auditor_role.py.

"Clinical data" is vitals, doses, side effects, notes and acknowledgements; the record
is demographics, appointments and progress (PHQ-9 totals), which schedulers need.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from django.db.models import QuerySet

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    from patients.models import Patient

    User = AbstractBaseUser | AnonymousUser


class Role(enum.StrEnum):
    CLINICIAN = "clinician"
    SCHEDULER = "scheduler"
    PATIENT = "patient"
    #: Reads the audit trail (audit/), and nothing of the clinic's records otherwise.
    AUDITOR = "auditor"


STAFF_ROLES = frozenset({Role.CLINICIAN, Role.SCHEDULER})
_CACHE_ATTR = "_clinic_roles"


def user_roles(user: User) -> frozenset[Role]:
    """The clinic roles of ``user`` (cached on the user object for the request)."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = frozenset(role for role in Role if role.value in names)
        setattr(user, _CACHE_ATTR, cached)
    return cached


def has_role(user: User, role: Role) -> bool:
    return role in user_roles(user)


def _is_superuser(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def is_staff_member(user: User) -> bool:
    """Clinicians, schedulers and superusers: the people who work for the clinic."""
    return _is_superuser(user) or bool(user_roles(user) & STAFF_ROLES)


def is_clinician(user: User) -> bool:
    """Clinicians (and superusers) record clinical data."""
    return _is_superuser(user) or has_role(user, Role.CLINICIAN)


def is_auditor(user: User) -> bool:
    """Auditors (and superusers) search the audit trail."""
    return _is_superuser(user) or has_role(user, Role.AUDITOR)


def can_view_patient(user: User, patient: Patient) -> bool:
    if is_staff_member(user):
        return True
    return has_role(user, Role.PATIENT) and patient.user_id is not None and patient.user_id == user.pk


def can_change_patient(user: User, patient: Patient) -> bool:
    return is_staff_member(user)


def can_view_clinical(user: User, patient: Patient | None = None) -> bool:
    return is_clinician(user)


def can_record_clinical(user: User, patient: Patient | None = None) -> bool:
    return is_clinician(user)


def visible_patients(user: User) -> QuerySet[Patient]:
    """The patients ``user`` may see: all for staff, their own for a patient, else none."""
    from patients.models import Patient

    if is_staff_member(user):
        return Patient.objects.all()
    if has_role(user, Role.PATIENT):
        return Patient.objects.filter(user_id=user.pk)
    return Patient.objects.none()
