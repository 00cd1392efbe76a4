"""Model building blocks shared by the clinic's apps."""

from __future__ import annotations

import re
import uuid

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction


class PublicModel(models.Model):
    """A record addressed from URLs and the API by an opaque UUID, never a sequence."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


def constraint_violation(model: type[models.Model], error: IntegrityError) -> ValidationError | None:
    """The ``ValidationError`` a violated constraint of ``model`` stands for, if it is one.

    PostgreSQL names the constraint in the error's diagnostics; SQLite in its message.
    """
    cause = error.__cause__
    name = getattr(getattr(cause, "diag", None), "constraint_name", None)
    for constraint in model._meta.constraints:
        if constraint.name == name or (name is None and re.search(rf"\b{re.escape(constraint.name)}\b", str(error))):
            return ValidationError(constraint.get_violation_error_message(), code="constraint")
    # A unique field (a one-to-one, say) lost a race: PostgreSQL names its column in the
    # detail ("Key (patient_id)=(...) already exists."); the value is not repeated.
    detail = getattr(getattr(cause, "diag", None), "message_detail", None) or ""
    match = re.match(r"Key \((\w+)\)=", detail)
    if match:
        for field in model._meta.concrete_fields:
            if field.unique and field.column == match.group(1):
                return ValidationError(
                    {field.name: f"A {model._meta.verbose_name} with this {field.verbose_name} already exists."},
                    code="unique",
                )
    return None


def validate_and_save(instance: models.Model, **save_kwargs) -> None:
    """Validate fields and ``clean()`` in Python, then save; the database checks the
    constraints once, and a violation comes back as a ``ValidationError`` with the
    constraint's message (instead of one query per constraint in ``full_clean``)."""
    instance.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            instance.save(**save_kwargs)
    except IntegrityError as error:
        violation = constraint_violation(type(instance), error)
        if violation is None:
            raise
        raise violation from error
