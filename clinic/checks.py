"""System checks for the clinic's own settings (stable IDs: clinic.E0xx)."""

from datetime import time

from django.conf import settings
from django.core.checks import Error, register


@register()
def check_clinic_settings(app_configs, **kwargs) -> list[Error]:
    errors: list[Error] = []
    closed = settings.CLINIC_CLOSED_WEEKDAYS
    if any(day not in range(7) for day in closed):
        errors.append(
            Error(
                "CLINIC_CLOSED_WEEKDAYS must list weekday numbers 0 (Monday) to 6 (Sunday).",
                id="clinic.E001",
            )
        )
    elif len(set(closed)) >= 6:
        # Twice-weekly series need two non-consecutive open days a week.
        errors.append(Error("CLINIC_CLOSED_WEEKDAYS leaves fewer than two open days a week.", id="clinic.E002"))
    try:
        time.fromisoformat(settings.CLINIC_DEFAULT_APPOINTMENT_TIME)
    except ValueError:
        errors.append(Error("CLINIC_DEFAULT_APPOINTMENT_TIME must be HH:MM.", id="clinic.E003"))
    for name in (
        "CLINIC_SERIES_MAX_GAP_DAYS",
        "CLINIC_BASELINE_WINDOW_DAYS",
        "CLINIC_BOOSTER_LEAD_DAYS",
        "CLINIC_BOOSTER_OVERDUE_GRACE_DAYS",
    ):
        if getattr(settings, name) < 0:
            errors.append(Error(f"{name} must not be negative.", id="clinic.E004"))
    return errors
