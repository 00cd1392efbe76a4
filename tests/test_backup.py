"""Backups: manage.py backup_db (pg_dump) and restore_db (pg_restore into an empty database).

The main test fills the clinic with a record of every kind, commits it, dumps it,
restores the dump into a new empty database and compares every table of the source
(listed from information_schema, not by hand) row count and row checksum, plus the
triggers and sequences.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone
from psycopg import sql

from clinic.management.commands.backup_db import pg_dump_command
from clinic.management.commands.restore_db import migration_problems
from clinic.management.postgres import check_client_not_older
from maintenance.models import MaintenancePlan, Notification, Reminder
from maintenance.services import booster_schedule, maintenance_plan_save
from patients.access import Role
from patients.models import Patient, PHQ9Assessment
from patients.services import phq9_record
from sessions.models import InductionSeries, InfusionAmendment, InfusionSession, SideEffect, VitalSignReading
from sessions.scheduling import clinic_datetime
from sessions.services import (
    series_create,
    series_discontinue,
    session_amend,
    session_complete,
    session_discharge,
    session_record_side_effect,
    session_record_vitals,
    session_sign,
    session_start,
)
from sessions.vitals import VitalPhase
from tests import factories

BASE_DIR = Path(__file__).resolve().parent.parent
SERIES_START = dt.date(2025, 3, 3)  # a Monday, long past: the series is entered after the fact
TRIGGER_MESSAGE = "amendments are never changed"


# --- Databases ------------------------------------------------------------------------


def _connect(dbname: str) -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        dbname=dbname,
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        autocommit=True,
    )


def _url(dbname: str) -> str:
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    user = quote(db["USER"] or "", safe="")
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{dbname}"


@pytest.fixture
def empty_database():
    """A new empty database (dropped afterwards): its name."""
    name = f"clinic_restore_{uuid.uuid4().hex[:12]}"
    with _connect("postgres") as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    with _connect("postgres") as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def amendment_trigger():
    """A trigger of our own in the source database, as django-pgtrigger installs them:
    amendments refuse UPDATE. Removed afterwards (the test database is shared)."""
    table = sql.Identifier(InfusionAmendment._meta.db_table)
    with _connect(connection.settings_dict["NAME"]) as source:
        source.execute(
            "CREATE FUNCTION backup_test_refuse_update() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{TRIGGER_MESSAGE}'; END $$"
        )
        source.execute(
            sql.SQL(
                "CREATE TRIGGER backup_test_refuse_update BEFORE UPDATE ON {} "
                "FOR EACH ROW EXECUTE FUNCTION backup_test_refuse_update()"
            ).format(table)
        )
    yield "backup_test_refuse_update"
    with _connect(connection.settings_dict["NAME"]) as source:
        source.execute(sql.SQL("DROP TRIGGER IF EXISTS backup_test_refuse_update ON {}").format(table))
        source.execute("DROP FUNCTION IF EXISTS backup_test_refuse_update()")


def snapshot(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    """Every application table, from information_schema: its row count and a checksum of its rows."""
    conn.execute("SET TimeZone = 'UTC'")
    tables = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
        "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
    ).fetchall()
    result = {}
    for schema, name in tables:
        query = sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {}.{} t"
        ).format(sql.Identifier(schema), sql.Identifier(name))
        result[f"{schema}.{name}"] = tuple(conn.execute(query).fetchone())
    return result


def triggers(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    return set(
        conn.execute(
            "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"
        ).fetchall()
    )


def sequences(conn: psycopg.Connection) -> set[tuple]:
    return set(conn.execute("SELECT schemaname, sequencename, last_value FROM pg_sequences").fetchall())


# --- A clinic with a record of every kind ------------------------------------------------


def next_open_day() -> dt.date:
    day = timezone.localdate() + dt.timedelta(days=2)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def fill_the_clinic() -> None:
    # A user of every role (the patient's comes with the portal account) and a superuser.
    staff = {
        role: factories.UserFactory(username=f"backup_{role.value}", role=role.value)
        for role in Role
        if role != Role.PATIENT
    }
    clinician, scheduler = staff[Role.CLINICIAN], staff[Role.SCHEDULER]
    factories.UserFactory(username="backup_root", is_superuser=True, is_staff=True)
    patient = factories.PatientFactory(with_portal_account=True, primary_clinician=clinician)
    protocol = factories.ProtocolFactory()
    items = {f"item_{n}": 2 for n in range(1, 10)} | {"item_9": 0}
    phq9_record(
        patient=patient, answers=items, taken_at=clinic_datetime(SERIES_START - dt.timedelta(days=3), dt.time(10)),
        entered_by=clinician,
    )  # fmt: skip

    series = series_create(
        patient=patient, protocol=protocol, start_date=SERIES_START, created_by=scheduler, allow_past=True
    )
    session = series.sessions.order_by("scheduled_at").first()
    start = session.scheduled_at
    session = session_start(session=session, by=clinician, weight_kg="80.0", started_at=start)
    session_record_vitals(
        session=session, by=clinician, phase=VitalPhase.PRE, taken_at=start - dt.timedelta(minutes=5),
        systolic=128, diastolic=82, heart_rate=72, spo2=98,
    )  # fmt: skip
    # Past the alert threshold: a vitals notification for the clinician.
    session_record_vitals(
        session=session, by=clinician, phase=VitalPhase.DURING, taken_at=start + dt.timedelta(minutes=30),
        systolic=186, diastolic=104, heart_rate=96, spo2=97,
    )  # fmt: skip
    session_record_side_effect(session=session, by=clinician, kind="dissociation", severity="mild", note="Brief.")
    session_record_side_effect(session=session, by=clinician, kind="nausea_vomiting", severity="moderate")
    session = session_complete(
        session=session, by=clinician, ended_at=start + dt.timedelta(minutes=40), dissociation_scale="cadss6",
        dissociation_score=6, notes="Tolerated well; it's \"fine\" — ünïcode kept.",
    )  # fmt: skip
    session = session_discharge(session=session, by=clinician, discharged_at=start + dt.timedelta(minutes=100))
    session = session_sign(session=session, by=clinician, signed_at=start + dt.timedelta(minutes=110))
    session_amend(
        session=session, by=clinician, reason="Scored from the wrong sheet.", changes={"dissociation_score": 5}
    )
    series_discontinue(series=series, by=scheduler, reason="Moved to boosters after one infusion.")

    maintenance_plan_save(patient=patient, by=scheduler, protocol=protocol, target_interval_days=28,
                          min_interval_days=14, max_interval_days=42)  # fmt: skip
    booster_schedule(patient=patient, scheduled_at=clinic_datetime(next_open_day(), dt.time(10)), by=scheduler)
    # Item 9 above 0: safety-alert reminders (in-app and email rows) and notifications.
    phq9_record(patient=patient, answers=items | {"item_9": 1}, entered_by=clinician)


@pytest.mark.django_db(transaction=True)
def test_a_backup_restored_into_an_empty_database_has_every_record(tmp_path, empty_database, amendment_trigger, capsys):
    fill_the_clinic()
    kinds = [Patient, PHQ9Assessment, InductionSeries, InfusionSession, VitalSignReading, SideEffect,
             InfusionAmendment, MaintenancePlan, Notification, Reminder]  # fmt: skip
    assert all(model.objects.exists() for model in kinds)
    assert set(Group.objects.filter(user__isnull=False).values_list("name", flat=True)) == set(Role)
    assert InfusionSession.objects.filter(kind="booster").exists()
    assert InfusionSession.objects.filter(signed_at__isnull=False, amendments__isnull=False).exists()

    dump = tmp_path / "clinic.dump"
    call_command("backup_db", output=str(dump))
    assert f"Backup written: {dump}" in capsys.readouterr().out
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600

    call_command("restore_db", str(dump), database_url=_url(empty_database), yes=True)
    out = capsys.readouterr().out
    assert re.search(rf"{InfusionAmendment._meta.db_table}\s+1\b", out)
    assert "the restored schema matches this code" in out

    with _connect(connection.settings_dict["NAME"]) as source, _connect(empty_database) as restored:
        expected, found = snapshot(source), snapshot(restored)
        assert len(expected) > 20
        assert found.keys() == expected.keys()
        for table, (count, checksum) in expected.items():
            assert found[table] == (count, checksum), f"{table}: {count} rows expected, {found[table][0]} found"
        for model in kinds:
            assert expected[f"public.{model._meta.db_table}"][0] > 0, model

        assert triggers(restored) == triggers(source)
        assert amendment_trigger in {name for _table, name, _definition in triggers(restored)}
        assert sequences(restored) == sequences(source)
        with pytest.raises(psycopg.errors.RaiseException, match=TRIGGER_MESSAGE):
            restored.execute(
                sql.SQL("UPDATE {} SET reason = 'x'").format(sql.Identifier(InfusionAmendment._meta.db_table))
            )

        # The migration check names what the restored schema lacks, or has from a newer release.
        restored.execute("DELETE FROM django_migrations WHERE app = 'patients' AND name = '0001_initial'")
        restored.execute("INSERT INTO django_migrations (app, name, applied) VALUES ('patients', '9999_future', now())")
        lacking, unknown = migration_problems(restored)
        assert "not applied (patients.0001_initial)" in lacking
        assert "unknown to this code (patients.9999_future)" in unknown


# --- Refusals -----------------------------------------------------------------------------


@pytest.fixture
def dump(db, tmp_path) -> Path:
    path = tmp_path / "schema.dump"
    call_command("backup_db", output=str(path))
    return path


def test_restore_refuses_a_database_that_has_tables_and_leaves_it_untouched(dump, empty_database):
    with _connect(empty_database) as target:
        target.execute("CREATE TABLE live_data (note text)")
        target.execute("INSERT INTO live_data VALUES ('still here')")
    with pytest.raises(CommandError, match=r"is not empty .*public.live_data.*dropdb"):
        call_command("restore_db", str(dump), database_url=_url(empty_database), yes=True)
    with _connect(empty_database) as target:
        assert target.execute("SELECT note FROM live_data").fetchall() == [("still here",)]
        assert target.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone() == (1,)


def test_restore_refuses_the_configured_database_when_it_has_tables(dump):
    with _connect(connection.settings_dict["NAME"]) as source:
        before = snapshot(source)
    with pytest.raises(CommandError, match="Refusing to restore"):
        call_command("restore_db", str(dump), yes=True)
    with _connect(connection.settings_dict["NAME"]) as source:
        assert snapshot(source) == before


def test_restore_refuses_a_file_that_is_not_a_dump(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("not a dump")
    with pytest.raises(CommandError, match=r"cannot be read by pg_restore.*not a pg_dump custom-format file"):
        call_command("restore_db", str(junk), database_url="postgres://nobody@127.0.0.1:1/none", yes=True)


def test_restore_without_yes_outside_a_terminal_asks_for_it(dump, empty_database, monkeypatch):
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    with pytest.raises(CommandError, match="pass --yes"):
        call_command("restore_db", str(dump), database_url=_url(empty_database))
    with _connect(empty_database) as target:
        assert target.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        ).fetchone() == (0,)


# --- The dump file ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_dump_is_owner_only_and_timestamped_in_the_backup_directory(settings, tmp_path, capsys):
    settings.CLINIC_BACKUP_DIR = tmp_path / "backups"
    call_command("backup_db")
    (dump,) = settings.CLINIC_BACKUP_DIR.iterdir()  # no .partial left behind
    assert re.fullmatch(rf"{connection.settings_dict['NAME']}-\d{{8}}T\d{{6}}Z\.dump", dump.name)
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.CLINIC_BACKUP_DIR.stat().st_mode) == 0o700
    out = capsys.readouterr().out
    assert str(dump) in out
    assert "KiB" in out or "MiB" in out


@pytest.mark.django_db
def test_a_backup_never_overwrites_a_file(tmp_path):
    existing = tmp_path / "clinic.dump"
    existing.write_text("an older backup")
    with pytest.raises(CommandError, match="already exists"):
        call_command("backup_db", output=str(existing))
    assert existing.read_text() == "an older backup"


def test_the_password_travels_in_the_environment_never_on_the_command_line():
    argv, env = pg_dump_command(
        {"ENGINE": "django.db.backends.postgresql", "NAME": "clinic", "USER": "clinic",
         "PASSWORD": "s3cret-pw", "HOST": "db.internal", "PORT": "5433", "OPTIONS": {"sslmode": "require"}},
    )  # fmt: skip
    assert not any("s3cret-pw" in arg for arg in argv)
    assert argv[:2] == ["pg_dump", "--format=custom"]
    assert argv[2:] == ["--no-password", "--host", "db.internal", "--port", "5433", "--username", "clinic",
                        "--dbname", "clinic"]  # fmt: skip
    assert env["PGPASSWORD"] == "s3cret-pw"
    assert env["PGSSLMODE"] == "require"


def test_a_server_newer_than_the_client_is_named_with_the_fix():
    check_client_not_older(tool="pg_dump", tool_path="/usr/bin/pg_dump", client_major=15, server_major=15)
    with pytest.raises(CommandError, match=r"server is version 16, newer than pg_dump 15.*postgresql-client-16"):
        check_client_not_older(tool="pg_dump", tool_path="/usr/bin/pg_dump", client_major=15, server_major=16)


def test_backup_refuses_sqlite_with_a_clear_message(tmp_path):
    with pytest.raises(CommandError, match=r"PostgreSQL only.*SQLite"):
        pg_dump_command({"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "x.sqlite3")})

    # The command itself, as a developer would run it against the embedded database.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": "clinic.settings",
        "DJANGO_DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'clinic.sqlite3'}",
        "CLINIC_VAR_DIR": str(tmp_path / "var"),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "backup_db"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "backup_db works with PostgreSQL only, and this configuration uses SQLite" in result.stderr
    assert not (tmp_path / "var" / "backups").exists()
