"""Form helpers shared by the clinic's pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from django import forms
from django.core.exceptions import ValidationError

#: Dates outside these years are typing errors (and overflow date arithmetic).
EARLIEST_YEAR, LATEST_YEAR = 1900, 2100


def is_plausible_day(day: dt.date) -> bool:
    return EARLIEST_YEAR <= day.year <= LATEST_YEAR


def validate_plausible_day(value: dt.date | dt.datetime) -> None:
    if not is_plausible_day(value):
        raise ValidationError(f"Enter a date between {EARLIEST_YEAR} and {LATEST_YEAR}.")


def add_service_errors(form: forms.Form, error: ValidationError, aliases: Mapping[str, str] | None = None) -> None:
    """Show a service's ValidationError on the form: next to the field it names when the
    form has that field, at the top otherwise. The form keeps what was typed.

    ``aliases`` maps a service's field names to the form's (the services say
    ``scheduled_at`` where a form asks for a date and a time).
    """
    if hasattr(error, "error_dict"):
        for field, messages in error.message_dict.items():
            field = (aliases or {}).get(field, field)
            form.add_error(field if field in form.fields else None, messages)
    else:
        form.add_error(None, error.messages)


class PlausibleDateField(forms.DateField):
    default_validators = [validate_plausible_day]


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%d")


class TimeInput(forms.TimeInput):
    input_type = "time"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%H:%M")
