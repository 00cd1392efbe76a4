"""Vital-sign thresholds (configurable, see CLINIC_VITALS_* settings).

Before an infusion a blood pressure above the review level (default 140/90 mmHg) asks
for review before starting; during the session and before discharge, above the alert
level (default 180/100 mmHg), a heart rate above 110/min or SpO2 below 92 % alerts.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import models


class VitalPhase(models.TextChoices):
    PRE = "pre", "Before infusion"
    DURING = "during", "During infusion"
    DISCHARGE = "discharge", "Before discharge"


@dataclass(frozen=True)
class VitalAlert:
    measure: str  # "blood_pressure", "heart_rate" or "spo2"
    message: str
    #: "review": check before starting; "alert": act now.
    level: str


def vital_alerts(
    *,
    phase: str,
    systolic: int | None = None,
    diastolic: int | None = None,
    heart_rate: int | None = None,
    spo2: int | None = None,
) -> list[VitalAlert]:
    """The thresholds a reading crosses (mmHg, beats/min, % saturation)."""
    alerts: list[VitalAlert] = []
    if systolic is not None and diastolic is not None:
        if phase == VitalPhase.PRE:
            high_sys, high_dia = settings.CLINIC_VITALS_REVIEW_SYSTOLIC, settings.CLINIC_VITALS_REVIEW_DIASTOLIC
            level = "review"
        else:
            high_sys, high_dia = settings.CLINIC_VITALS_ALERT_SYSTOLIC, settings.CLINIC_VITALS_ALERT_DIASTOLIC
            level = "alert"
        crossed = [
            f"{name} above {limit}"
            for name, value, limit in (("systolic", systolic, high_sys), ("diastolic", diastolic, high_dia))
            if value > limit
        ]
        if crossed:
            message = f"Blood pressure {systolic}/{diastolic} mmHg: {' and '.join(crossed)}"
            alerts.append(VitalAlert("blood_pressure", message, level))
    if heart_rate is not None and heart_rate > settings.CLINIC_VITALS_ALERT_HEART_RATE:
        alerts.append(
            VitalAlert(
                "heart_rate", f"Heart rate {heart_rate}/min above {settings.CLINIC_VITALS_ALERT_HEART_RATE}", "alert"
            )
        )
    if spo2 is not None and spo2 < settings.CLINIC_VITALS_ALERT_SPO2_BELOW:
        alerts.append(VitalAlert("spo2", f"SpO2 {spo2} % below {settings.CLINIC_VITALS_ALERT_SPO2_BELOW} %", "alert"))
    return alerts
