"""Who may see or change a patient's record (patients/access.py) and the role groups."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import AnonymousUser, Group, User

from patients.access import (
    Role,
    can_change_patient,
    can_record_clinical,
    can_view_clinical,
    can_view_patient,
    is_staff_member,
    user_roles,
    visible_patients,
)
from patients.models import Patient
from tests.factories import PatientFactory, UserFactory

roles_migration = importlib.import_module("patients.migrations.0002_roles")

ROLE_NAMES = {"clinician", "scheduler", "patient", "auditor"}


# --- The groups --------------------------------------------------------------------


@pytest.mark.django_db
def test_it_creates_the_role_groups_in_migrations():
    # No user fixture here: the groups must come from the migrations alone.
    assert set(Group.objects.filter(name__in=ROLE_NAMES).values_list("name", flat=True)) == ROLE_NAMES
    assert {role.value for role in Role} == ROLE_NAMES


@pytest.mark.django_db
def test_the_roles_migration_is_reversible_and_idempotent():
    staff_roles = ROLE_NAMES - {"auditor"}  # the auditor's group is the audit app's
    roles_migration.remove_roles(apps, None)
    assert not Group.objects.filter(name__in=staff_roles).exists()
    roles_migration.create_roles(apps, None)
    roles_migration.create_roles(apps, None)
    assert sorted(Group.objects.filter(name__in=staff_roles).values_list("name", flat=True)) == sorted(staff_roles)


# --- The access table ----------------------------------------------------------------


def _anonymous(request):
    return AnonymousUser()


def _patient_a(request):
    return request.getfixturevalue("patient").user


def _patient_b(request):
    return request.getfixturevalue("other_patient").user


def _fixture(name):
    return lambda request: request.getfixturevalue(name)


def _inactive_clinician(request):
    return UserFactory(username="dr_retired", role="clinician", is_active=False)


def _inactive_superuser(request):
    return UserFactory(username="old_root", is_superuser=True, is_staff=True, is_active=False)


def _no_group(request):
    return UserFactory(username="nobody")


def _staff_flag_without_group(request):
    # Django's is_staff flag is not a clinic role.
    return UserFactory(username="flag_only", is_staff=True)


def _patient_role_without_record(request):
    # In the patient group but linked to no record (e.g. an invitation half done).
    return UserFactory(username="unlinked_portal", role="patient")


USERS = {
    "anonymous": _anonymous,
    "patient_a": _patient_a,
    "patient_b": _patient_b,
    "scheduler": _fixture("scheduler"),
    "clinician": _fixture("clinician"),
    "superuser": _fixture("superuser"),
    "inactive_clinician": _inactive_clinician,
    "inactive_superuser": _inactive_superuser,
    "no_group": _no_group,
    "staff_flag_without_group": _staff_flag_without_group,
    "patient_role_without_record": _patient_role_without_record,
}

#: Patient A's record, per the table in patients/access.py:
#: (view the record, change the record, view clinical data, record clinical data, visible_patients()).
TABLE = {
    "anonymous": (False, False, False, False, "none"),
    "patient_a": (True, False, False, False, "own"),
    "patient_b": (False, False, False, False, "own"),
    "scheduler": (True, True, False, False, "all"),
    "clinician": (True, True, True, True, "all"),
    "superuser": (True, True, True, True, "all"),
    "inactive_clinician": (False, False, False, False, "none"),
    "inactive_superuser": (False, False, False, False, "none"),
    "no_group": (False, False, False, False, "none"),
    "staff_flag_without_group": (False, False, False, False, "none"),
    "patient_role_without_record": (False, False, False, False, "none"),
}


@pytest.fixture
def patients(patient, other_patient):
    """Patient A (portal), patient B (portal) and a patient without a portal account."""
    return {"a": patient, "b": other_patient, "no_portal": PatientFactory()}


@pytest.mark.django_db
@pytest.mark.parametrize("who", list(TABLE))
def test_it_grants_each_role_exactly_what_the_table_says_on_patient_a(request, patients, who):
    user = USERS[who](request)
    view, change, view_clinical, record_clinical, _ = TABLE[who]
    patient_a = patients["a"]
    assert {
        "view": can_view_patient(user, patient_a),
        "change": can_change_patient(user, patient_a),
        "view_clinical": can_view_clinical(user, patient_a),
        "record_clinical": can_record_clinical(user, patient_a),
    } == {"view": view, "change": change, "view_clinical": view_clinical, "record_clinical": record_clinical}


@pytest.mark.django_db
@pytest.mark.parametrize("who", list(TABLE))
def test_visible_patients_are_all_for_staff_their_own_for_a_patient_and_none_otherwise(request, patients, who):
    user = USERS[who](request)
    scope = TABLE[who][4]
    visible = set(visible_patients(user))
    if scope == "all":
        assert visible == set(Patient.objects.all())
        assert len(visible) == 3
    elif scope == "own":
        assert visible == {Patient.objects.get(user=user)}
    else:
        assert visible == set()


@pytest.mark.django_db
@pytest.mark.parametrize("who", list(TABLE))
def test_visible_patients_agree_with_can_view_patient(request, patients, who):
    user = USERS[who](request)
    visible = set(visible_patients(user))
    for record in patients.values():
        assert (record in visible) == can_view_patient(user, record), record


@pytest.mark.django_db
def test_a_patient_never_sees_another_patients_record(patients):
    for owner in ("a", "b"):
        user = patients[owner].user
        for other, record in patients.items():
            if other == owner:
                continue
            assert not can_view_patient(user, record)
            assert not can_change_patient(user, record)
            assert not can_view_clinical(user, record)
            assert not can_record_clinical(user, record)
            assert record not in visible_patients(user)


@pytest.mark.django_db
def test_a_patient_sees_their_own_record_but_not_its_clinical_data(patient):
    user = patient.user
    assert can_view_patient(user, patient)
    assert not can_change_patient(user, patient)
    assert not can_view_clinical(user, patient)
    assert not can_record_clinical(user, patient)


@pytest.mark.django_db
def test_a_patient_account_linked_to_no_record_sees_no_record_not_even_one_without_a_portal(patients):
    user = UserFactory(username="unlinked", role="patient")
    assert not can_view_patient(user, patients["no_portal"])
    assert not visible_patients(user).exists()


@pytest.mark.django_db
def test_a_deactivated_patient_account_loses_its_own_record(patient):
    user = User.objects.get(pk=patient.user_id)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert not can_view_patient(user, patient)
    assert not visible_patients(user).exists()


@pytest.mark.django_db
def test_staff_members_are_clinicians_schedulers_and_superusers_only(clinician, scheduler, superuser, patient):
    assert is_staff_member(clinician)
    assert is_staff_member(scheduler)
    assert is_staff_member(superuser)
    assert not is_staff_member(patient.user)
    assert not is_staff_member(AnonymousUser())


# --- Role caching ------------------------------------------------------------------


@pytest.mark.django_db
def test_it_caches_a_users_roles_on_the_user_object(clinician, patient, django_assert_num_queries):
    user = User.objects.get(pk=clinician.pk)  # a fresh object, nothing cached yet
    with django_assert_num_queries(1):
        assert user_roles(user) == frozenset({Role.CLINICIAN})
    with django_assert_num_queries(0):
        assert user_roles(user) == frozenset({Role.CLINICIAN})
        assert can_view_patient(user, patient)
        assert can_record_clinical(user, patient)


@pytest.mark.django_db
def test_anonymous_and_inactive_users_have_no_roles_without_a_query(django_assert_num_queries):
    inactive = UserFactory(username="gone", role="clinician", is_active=False)
    with django_assert_num_queries(0):
        assert user_roles(AnonymousUser()) == frozenset()
        assert user_roles(inactive) == frozenset()
