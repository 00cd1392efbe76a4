"""Encryption at rest: contact details and clinical free text are ciphertext in the
database and plaintext through the ORM; keys rotate; production needs a key; the
migrations encrypt the rows stored before them."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django import forms
from django.conf import settings
from django.core.exceptions import FieldError, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.utils import timezone

from audit import trail
from clinic.encryption import DecryptionError, encrypted_columns, rotate_keys
from maintenance.models import MaintenancePlan
from patients.models import Patient, PHQ9Assessment
from sessions.models import (
    Drug,
    InductionSeries,
    InfusionAmendment,
    InfusionSession,
    Route,
    SessionStatus,
    SideEffect,
    SideEffectKind,
)
from tests.factories import MaintenancePlanFactory, PatientFactory, PHQ9Factory, ProtocolFactory
from tests.test_security import production_env

ROOT = Path(__file__).resolve().parent.parent

AMENDED = {
    "notes": {"from": "Tolerated.", "to": "Tolerated well; nausea at 30 min."},
    "dissociation_score": {"from": None, "to": 12},  # types survive: null and a number
}
#: Every encrypted field, and a value to store in it.
ENCRYPTED = [
    (Patient, "email", "grace.hopper@example.test"),
    (Patient, "phone", "(555) 201-3344"),
    (Patient, "address", "12 Harbour Road\nLakeside"),
    (Patient, "emergency_contact_name", "Ada Hopper"),
    (Patient, "emergency_contact_phone", "(555) 777-1212"),
    (PHQ9Assessment, "safety_action", "Called the patient; safety plan reviewed with her."),
    (InductionSeries, "discontinued_reason", "Moved to another state."),
    (InfusionSession, "notes", "Tolerated well; music helped."),
    (InfusionSession, "status_reason", "Car broke down on the way."),
    (SideEffect, "note", "Tingling in both hands."),
    (InfusionAmendment, "reason", "Weight misread from the scale."),
    (InfusionAmendment, "changes", AMENDED),
    (MaintenancePlan, "notes", "Prefers Tuesday mornings."),
]


@pytest.fixture
def records(clinician) -> dict[type, object]:
    """One row of every model with encrypted fields, each of them filled in."""
    now = timezone.now()
    patient = PatientFactory(phone="(555) 100-2000", address="1 Main St")
    protocol = ProtocolFactory()
    phq9 = PHQ9Factory(
        patient=patient,
        item_9=1,
        safety_acknowledged_at=now,
        safety_acknowledged_by=clinician,
        safety_action="Safety plan reviewed.",
    )
    series = InductionSeries.objects.create(
        patient=patient,
        protocol=protocol,
        planned_infusions=6,
        infusions_per_week=2,
        start_date=timezone.localdate(),
        discontinued_at=now,
        discontinued_reason="Stopped.",
    )
    session = InfusionSession.objects.create(
        patient=patient,
        series=series,
        scheduled_at=now + dt.timedelta(days=1),
        status=SessionStatus.CANCELLED,
        status_reason="Unwell.",
        route=Route.IV,
        drug=Drug.KETAMINE,
        notes="Booked.",
    )
    return {
        Patient: patient,
        PHQ9Assessment: phq9,
        InductionSeries: series,
        InfusionSession: session,
        SideEffect: SideEffect.objects.create(session=session, kind=SideEffectKind.OTHER, note="Hiccups."),
        InfusionAmendment: InfusionAmendment.objects.create(
            session=session, author=clinician, reason="Typo.", changes={"notes": {"from": "a", "to": "b"}}
        ),
        MaintenancePlan: MaintenancePlanFactory(patient=patient, protocol=protocol, notes="Mornings."),
    }


def raw(model, pk, field: str):
    """The column's content as the database holds it, read past the ORM."""
    column = model._meta.get_field(field).column
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}" FROM "{model._meta.db_table}" WHERE id = %s', [pk])
        return cursor.fetchone()[0]


def words(value) -> list[str]:
    """The words of a value (of every string in a JSON value) that must not show in the column."""
    text = value if isinstance(value, str) else " ".join(str(leaf) for leaf in _leaves(value))
    # Five letters or more: a shorter word could turn up in a token's base64 by chance.
    return [word for word in text.replace(";", " ").replace(".", " ").split() if len(word) >= 5]


def _leaves(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _leaves(item)
    elif value is not None:
        yield value


# --- Each field ---------------------------------------------------------------------------


def test_every_encrypted_field_of_the_clinical_apps_is_tested_here():
    tested = {(model, model._meta.get_field(field).column) for model, field, _ in ENCRYPTED}
    found = {
        (model, column)
        for model, columns in encrypted_columns().items()
        if model._meta.app_label in {"patients", "infusions", "maintenance"}
        for column in columns
    }
    assert found == tested


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "field", "value"), ENCRYPTED, ids=[f"{m.__name__}.{f}" for m, f, _ in ENCRYPTED])
def test_the_database_holds_ciphertext_and_the_orm_reads_plaintext(records, model, field, value):
    record = written(records[model], {field: value})

    stored = raw(model, record.pk, field)
    assert stored.startswith("gAAAAA")  # a Fernet token
    for word in words(value):
        assert word not in stored
    plaintext = Fernet(settings.CLINIC_FIELD_ENCRYPTION_KEYS[0]).decrypt(stored.encode()).decode()
    assert (json.loads(plaintext) if field == "changes" else plaintext) == value
    assert getattr(model.objects.get(pk=record.pk), field) == value
    assert model.objects.filter(pk=record.pk).values_list(field, flat=True).get() == value


def written(record, values: dict):
    """``record`` saved with ``values``; an amendment, which is never rewritten (a database
    trigger refuses), is written as a new one instead."""
    if isinstance(record, InfusionAmendment):
        record = InfusionAmendment(session=record.session, author=record.author, reason=record.reason, changes={})
        for field, value in values.items():
            setattr(record, field, value)
        record.save()
        return record
    for field, value in values.items():
        setattr(record, field, value)
    record.save(update_fields=list(values))
    return record


@pytest.mark.django_db
def test_the_same_value_is_stored_differently_each_time(records):
    patient = records[Patient]
    patient.phone = "(555) 201-3344"
    patient.save(update_fields=["phone"])
    first = raw(Patient, patient.pk, "phone")
    patient.save(update_fields=["phone"])
    assert raw(Patient, patient.pk, "phone") != first  # equal values cannot be spotted in the table


@pytest.mark.django_db
def test_queryset_update_encrypts_too(records):
    session = records[InfusionSession]
    InfusionSession.objects.filter(pk=session.pk).update(notes="Written by update().")
    assert "update" not in raw(InfusionSession, session.pk, "notes")
    session.refresh_from_db()
    assert session.notes == "Written by update()."


# --- Empty values, constraints, lookups, validation ----------------------------------------


@pytest.mark.django_db
def test_an_empty_value_stays_an_empty_string(records):
    patient = records[Patient]
    patient.phone = ""
    patient.save(update_fields=["phone"])
    assert raw(Patient, patient.pk, "phone") == ""
    patient.refresh_from_db()
    assert patient.phone == ""
    assert Patient.objects.filter(pk=patient.pk, phone="").exists()
    assert not Patient.objects.filter(pk=patient.pk, email="").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "changes"),
    [
        (SideEffect, {"note": ""}),  # an "other" side effect is described
        (InfusionAmendment, {"reason": ""}),  # an amendment gives its reason
        (InductionSeries, {"discontinued_reason": ""}),  # a discontinued series says why
        (PHQ9Assessment, {"safety_action": ""}),  # an acknowledgement records the action
    ],
)
def test_the_constraints_on_encrypted_fields_still_hold(records, model, changes):
    with pytest.raises(IntegrityError), transaction.atomic():
        written(records[model], changes)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "lookup"),
    [
        (Patient, {"email": "grace@example.test"}),
        (Patient, {"email__iexact": "grace@example.test"}),
        (Patient, {"phone__icontains": "555"}),
        (Patient, {"email__in": ["grace@example.test"]}),
        (InfusionSession, {"notes__startswith": "Tolerated"}),
        (InfusionAmendment, {"changes__notes__isnull": False}),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else value.__name__,
)
def test_encrypted_fields_cannot_be_filtered_or_searched(model, lookup):
    """Each value has its own IV: such a query would silently find nothing, so it is refused."""
    with pytest.raises(FieldError, match="encrypted"):
        list(model.objects.filter(**lookup))


@pytest.mark.django_db
def test_the_fields_validate_as_before(records):
    patient = records[Patient]
    patient.phone = "5" * 33
    patient.email = "not-an-address"
    with pytest.raises(ValidationError) as error:
        patient.full_clean()
    assert set(error.value.message_dict) >= {"phone", "email"}
    # Forms get the same fields as before: an email field, lengths enforced.
    assert isinstance(Patient._meta.get_field("email").formfield(), forms.EmailField)
    assert Patient._meta.get_field("phone").formfield().max_length == 32
    assert Patient._meta.get_field("emergency_contact_name").formfield().max_length == 200
    assert SideEffect._meta.get_field("note").formfield().max_length == 300


@pytest.mark.django_db
def test_a_validation_error_does_not_stop_decryption(records):
    """The library's own fields stop decrypting after one failed clean(): these must not."""
    patient = records[Patient]
    patient.phone = "5" * 33
    with pytest.raises(ValidationError):
        patient.full_clean()
    assert Patient.objects.get(pk=patient.pk).phone == "(555) 100-2000"


# --- Keys -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_keys_rotate_the_first_encrypts_and_every_one_decrypts(records):
    old, new = settings.CLINIC_FIELD_ENCRYPTION_KEYS[0], Fernet.generate_key().decode()
    patient = records[Patient]  # written with the old key
    with override_settings(CLINIC_FIELD_ENCRYPTION_KEYS=[new, old]):
        assert Patient.objects.get(pk=patient.pk).phone == "(555) 100-2000"  # the old key, second, decrypts
        patient.emergency_contact_phone = "(555) 777-1212"
        patient.save(update_fields=["emergency_contact_phone"])
        written = raw(Patient, patient.pk, "emergency_contact_phone").encode()
        assert Fernet(new).decrypt(written) == b"(555) 777-1212"  # new writes use the first key
        with pytest.raises(InvalidToken):
            Fernet(old).decrypt(written)

        history_before = sum(model.objects.count() for model in trail.event_models())
        assert rotate_keys() >= len(records)  # every row with an encrypted value
        # Past the append-only history's triggers (its old rows are re-encrypted too), and
        # no new history: a rotation changes no one's record.
        assert sum(model.objects.count() for model in trail.event_models()) == history_before
        assert Fernet(new).decrypt(raw(Patient, patient.pk, "phone").encode()) == b"(555) 100-2000"
        assert Fernet(new).decrypt(raw(InfusionSession, records[InfusionSession].pk, "notes").encode())

    with override_settings(CLINIC_FIELD_ENCRYPTION_KEYS=[new]):  # the old key is no longer needed
        for model, field, _ in ENCRYPTED:
            getattr(model.objects.get(pk=records[model].pk), field)
        assert Patient.objects.get(pk=patient.pk).phone == "(555) 100-2000"
        changes = trail.changes(patient_id=patient.pk)  # the history reads with the new key alone
        assert ("emergency contact phone", "(555) 777-1212") in [
            (name, after) for change in changes for name, _before, after in change.fields
        ]


@pytest.mark.django_db
def test_without_the_key_reading_fails_loudly_instead_of_showing_ciphertext(records):
    with override_settings(CLINIC_FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        with pytest.raises(DecryptionError, match=r"patients\.Patient\.email"):
            Patient.objects.get(pk=records[Patient].pk)
        with pytest.raises(DecryptionError):
            rotate_keys()  # nothing is rewritten with a key that cannot read the data
    assert Patient.objects.get(pk=records[Patient].pk).phone == "(555) 100-2000"


def run_django(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (None, "CLINIC_FIELD_ENCRYPTION_KEYS must be set in production"),
        ("", "CLINIC_FIELD_ENCRYPTION_KEYS must be set in production"),
        ("not-a-fernet-key", "key 1 is not a Fernet key"),
        (f"{Fernet.generate_key().decode()},{'x' * 44}", "key 2 is not a Fernet key"),
    ],
    ids=["missing", "empty", "malformed", "second-malformed"],
)
def test_production_refuses_to_start_without_a_valid_key(keys, message):
    env = production_env()
    del env["CLINIC_FIELD_ENCRYPTION_KEYS"]
    if keys is not None:
        env["CLINIC_FIELD_ENCRYPTION_KEYS"] = keys
    result = run_django(env, "import django; django.setup()")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
    assert "x" * 44 not in result.stderr  # a key is never printed


@pytest.mark.slow
def test_production_starts_with_keys_from_the_environment():
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    env = production_env() | {"CLINIC_FIELD_ENCRYPTION_KEYS": f"{first}, {second}"}
    code = (
        "import django; django.setup(); from django.conf import settings; print(settings.CLINIC_FIELD_ENCRYPTION_KEYS)"
    )
    result = run_django(env, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str([first, second])


@pytest.mark.slow
def test_development_generates_a_key_once_and_keeps_it(tmp_path):
    env = production_env() | {
        "DJANGO_DEBUG": "true",
        "DJANGO_ALLOWED_HOSTS": "localhost",
        "CLINIC_VAR_DIR": str(tmp_path),
    }
    for name in ("CLINIC_FIELD_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL"):
        del env[name]
    code = (
        "import django; django.setup(); from django.conf import settings; print(settings.CLINIC_FIELD_ENCRYPTION_KEYS)"
    )
    first, second = run_django(env, code), run_django(env, code)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    key_file = tmp_path / "field-encryption.key"
    assert first.stdout.strip() == str([key_file.read_text()])
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert [path.name for path in tmp_path.glob("field-encryption.key*")] == ["field-encryption.key"]


# --- The migrations that encrypt existing rows ----------------------------------------------

BEFORE = [
    ("patients", "0003_patient_accepts_email_reminders"),
    ("infusions", "0001_initial"),
    ("maintenance", "0001_initial"),
]
ENCRYPTING = [
    ("patients", "0004_encrypt_contact_details"),
    ("infusions", "0002_encrypt_clinical_notes"),
    ("maintenance", "0002_encrypt_plan_notes"),
]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection)


def rows_before_encryption(apps) -> dict[type, object]:
    """Rows written by the models as they were before the encrypting migrations."""
    now = timezone.now()
    user = apps.get_model("auth", "User").objects.create(username="dr_before")
    patient = apps.get_model("patients", "Patient").objects.create(
        mrn="OLD-1",
        first_name="Grace",
        last_name="Hopper",
        date_of_birth=dt.date(1976, 12, 9),
        primary_diagnosis="trd",
        email="grace.hopper@example.test",
        phone="(555) 201-3344",
        address="12 Harbour Road\nLakeside",
        emergency_contact_name="Ada Hopper",
        emergency_contact_phone="(555) 777-1212",
    )
    phq9 = apps.get_model("patients", "PHQ9Assessment").objects.create(
        patient=patient,
        **{f"item_{n}": 1 for n in range(1, 10)},
        safety_acknowledged_at=now,
        safety_acknowledged_by=user,
        safety_action="Called the patient; safety plan reviewed with her.",
    )
    protocol = apps.get_model("infusions", "Protocol").objects.create(name="Old protocol", dose="0.50")
    series = apps.get_model("infusions", "InductionSeries").objects.create(
        patient=patient,
        protocol=protocol,
        planned_infusions=6,
        infusions_per_week=2,
        start_date=timezone.localdate(),
        discontinued_at=now,
        discontinued_reason="Moved to another state.",
    )
    session = apps.get_model("infusions", "InfusionSession").objects.create(
        patient=patient,
        series=series,
        scheduled_at=now,
        scheduled_on=timezone.localdate(),
        status="cancelled",
        status_reason="Car broke down on the way.",
        route="iv",
        drug="ketamine",
        notes="Tolerated well; music helped.",
    )
    empty = apps.get_model("infusions", "InfusionSession").objects.create(
        patient=patient, series=series, scheduled_at=now, scheduled_on=timezone.localdate(), route="iv", drug="ketamine"
    )
    return {
        Patient: patient,
        PHQ9Assessment: phq9,
        InductionSeries: series,
        InfusionSession: session,
        "empty session": empty,
        SideEffect: apps.get_model("infusions", "SideEffect").objects.create(
            session=session, kind="other", note="Tingling in both hands."
        ),
        InfusionAmendment: apps.get_model("infusions", "InfusionAmendment").objects.create(
            session=session, author=user, reason="Weight misread from the scale.", changes=AMENDED
        ),
        MaintenancePlan: apps.get_model("maintenance", "MaintenancePlan").objects.create(
            patient=patient, protocol=protocol, target_interval_days=28, notes="Prefers Tuesday mornings."
        ),
    }


@pytest.mark.django_db(transaction=True)
def test_the_migrations_encrypt_the_rows_stored_before_them_and_reverse():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        executor = migrate(BEFORE)
        old = rows_before_encryption(executor.loader.project_state(BEFORE).apps)
        assert raw(Patient, old[Patient].pk, "phone") == "(555) 201-3344"  # plaintext until now

        migrate(ENCRYPTING)
        for model, field, value in ENCRYPTED:
            stored = raw(model, old[model].pk, field)
            assert stored.startswith("gAAAAA"), (model, field)
            for word in words(value):
                assert word not in stored
            # Only this column: later migrations add others the table does not have yet.
            assert model.objects.filter(pk=old[model].pk).values_list(field, flat=True).get() == value
        # JSON keeps its types; empty values stay empty.
        amended = InfusionAmendment.objects.filter(pk=old[InfusionAmendment].pk).values_list("changes", flat=True)
        assert amended.get()["dissociation_score"] == {
            "from": None,
            "to": 12,
        }
        assert raw(InfusionSession, old["empty session"].pk, "notes") == ""

        migrate(BEFORE)  # reversed: plaintext again, in the original column types
        assert raw(Patient, old[Patient].pk, "phone") == "(555) 201-3344"
        assert raw(InfusionSession, old[InfusionSession].pk, "notes") == "Tolerated well; music helped."
        changes = raw(InfusionAmendment, old[InfusionAmendment].pk, "changes")
        assert (json.loads(changes) if isinstance(changes, str) else changes) == AMENDED
    finally:
        migrate(latest)
