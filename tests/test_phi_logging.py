"""No protected health information in logs or error pages."""

from __future__ import annotations

import logging

import pytest
from django.db import IntegrityError, transaction

from clinic.logging import WITHHELD, RedactExceptionArguments, RedactingFormatter
from patients import views as patient_views
from tests.factories import PatientFactory


def configured_formatter() -> logging.Formatter:
    """The formatter the project's LOGGING gives the console handler."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, RedactingFormatter):
            return handler.formatter
    raise AssertionError("LOGGING does not use clinic.logging.RedactingFormatter")


@pytest.mark.django_db
def test_a_database_error_quoting_a_row_is_logged_without_its_values(caplog):
    patient = PatientFactory(mrn="KC-SECRET-77")
    try:
        with transaction.atomic():
            PatientFactory(mrn=patient.mrn)
    except IntegrityError:
        logging.getLogger("django.request").exception("Internal Server Error: /patients/")
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert "KC-SECRET-77" in str(record.exc_info[1])  # PostgreSQL does quote it...
    text = configured_formatter().format(record)
    assert "KC-SECRET-77" not in text  # ...and the log does not
    assert "UniqueViolation" in text
    assert "IntegrityError" in text
    assert WITHHELD in text
    assert 'File "' in text  # the frames are kept: the bug can still be found


@pytest.mark.django_db
def test_a_server_error_shows_and_logs_no_patient_data(client, clinician, patient, monkeypatch, caplog):
    def failing_render(*args, **kwargs):
        raise ValueError(f"cannot render {patient.first_name} {patient.last_name} {patient.mrn}")

    monkeypatch.setattr(patient_views, "render", failing_render)
    client.raise_request_exception = False
    client.force_login(clinician)
    response = client.get(patient.get_absolute_url())
    assert response.status_code == 500
    body = response.content.decode()
    for value in (patient.first_name, patient.last_name, patient.mrn):
        assert value not in body
    logged = "\n".join(configured_formatter().format(r) for r in caplog.records)
    assert "Internal Server Error" in logged
    for value in (patient.first_name, patient.last_name, patient.mrn):
        assert value not in logged


def test_celerys_task_failure_line_names_the_exception_type_only():
    record = logging.LogRecord(
        "celery.app.trace",
        logging.ERROR,
        __file__,
        1,
        "Task %(name)s[%(id)s] raised unexpected: %(exc)s",
        None,
        None,
    )
    record.args = {"name": "maintenance.tasks.deliver", "id": "1", "exc": "IntegrityError('Key (mrn)=(KC-9) exists')"}
    assert RedactExceptionArguments().filter(record)
    assert "KC-9" not in record.getMessage()
    assert "maintenance.tasks.deliver" in record.getMessage()
