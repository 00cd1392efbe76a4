"""The audit trail: who read which patient's record (the access log) and who changed
what (change history kept by PostgreSQL triggers, see audit/history.py).

Both are append-only in the database itself: triggers refuse UPDATE, DELETE and TRUNCATE
on their tables (audit/migrations/0005_database_guards.py), so neither the application,
the admin nor a plain SQL statement can rewrite them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Channel(models.TextChoices):
    PAGE = "page", "Page"
    API = "api", "API"
    ADMIN = "admin", "Admin"


class Outcome(models.TextChoices):
    ALLOWED = "allowed", "Allowed"
    REFUSED = "refused", "Refused"
    NOT_FOUND = "not_found", "Not found"
    FAILED = "failed", "Failed"


class AccessLog(models.Model):
    """One request by a signed-in user: who, when, from where, what, and whose record.

    Written for every signed-in request (not only successful ones), so an attempt to read
    another patient's record is kept with the patient it was aimed at. The path is kept
    without its query string: search terms never reach the log.
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    # No database constraint and no cascade: the log outlives the accounts and records it names.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # the (user, at) index below serves it
        related_name="+",
    )
    username = models.CharField(max_length=150, help_text="The login at the time, kept if the account is renamed.")
    patient = models.ForeignKey(
        "patients.Patient",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # the (patient, at) index below serves it
        null=True,
        blank=True,
        related_name="+",
        help_text="The patient whose record the request addressed, allowed or not.",
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=300, help_text="Without the query string.")
    view = models.CharField(max_length=100, blank=True, help_text="The URL's name.")
    object_id = models.CharField(max_length=64, blank=True, help_text="The record the URL names.")
    status_code = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # The audit search: one patient's reads, newest first.
            models.Index(fields=["patient", "-at"], name="accesslog_patient_at"),
            # The audit search: one user's requests, newest first.
            models.Index(fields=["user", "-at"], name="accesslog_user_at"),
        ]

    def __str__(self) -> str:
        return f"{self.username} {self.method} {self.path} {self.outcome}"


# The change-history event models (PatientEvent, ...) are declared by audit.history, on
# the clinical models this app tracks; importing it here makes them this app's models.
from audit import history  # noqa: E402, F401
