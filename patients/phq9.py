"""PHQ-9 rules: items, severity bands, baseline, response and remission.

Every rule of ../shared/CLINICAL.md about the PHQ-9 lives here once; forms, the API,
the admin, tasks and charts call these functions. The total itself is computed by the
database (``PHQ9Assessment.total`` is a generated column), so it can never disagree
with the stored items.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models

if TYPE_CHECKING:
    from patients.models import Patient, PHQ9Assessment

ITEM_FIELDS: tuple[str, ...] = tuple(f"item_{n}" for n in range(1, 10))
SAFETY_ITEM = "item_9"
MAX_TOTAL = 27

#: The nine questions ("Over the last 2 weeks, how often have you been bothered by ...").
ITEM_QUESTIONS: dict[str, str] = {
    "item_1": "Little interest or pleasure in doing things",
    "item_2": "Feeling down, depressed, or hopeless",
    "item_3": "Trouble falling or staying asleep, or sleeping too much",
    "item_4": "Feeling tired or having little energy",
    "item_5": "Poor appetite or overeating",
    "item_6": ("Feeling bad about yourself, or that you are a failure or have let yourself or your family down"),
    "item_7": "Trouble concentrating on things, such as reading the newspaper or watching television",
    "item_8": (
        "Moving or speaking so slowly that other people could have noticed, or the opposite: "
        "being so fidgety or restless that you have been moving around a lot more than usual"
    ),
    "item_9": "Thoughts that you would be better off dead, or of hurting yourself in some way",
}

#: LOINC codes for export. Beware: 44260-8 is item 9, not the total.
LOINC_PANEL = "44249-1"
LOINC_TOTAL = "44261-6"
LOINC_DIFFICULTY = "69722-7"
LOINC_ITEMS: dict[str, str] = dict(
    zip(
        ITEM_FIELDS,
        ("44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"),
        strict=True,
    )
)


class Answer(models.IntegerChoices):
    NOT_AT_ALL = 0, "Not at all"
    SEVERAL_DAYS = 1, "Several days"
    MORE_THAN_HALF = 2, "More than half the days"
    NEARLY_EVERY_DAY = 3, "Nearly every day"


class Difficulty(models.TextChoices):
    """The tenth question: recorded, never added to the total."""

    NOT_DIFFICULT = "not_difficult", "Not difficult at all"
    SOMEWHAT = "somewhat", "Somewhat difficult"
    VERY = "very", "Very difficult"
    EXTREMELY = "extremely", "Extremely difficult"


class Severity(models.TextChoices):
    NONE_MINIMAL = "none_minimal", "None-minimal"
    MILD = "mild", "Mild"
    MODERATE = "moderate", "Moderate"
    MODERATELY_SEVERE = "moderately_severe", "Moderately severe"
    SEVERE = "severe", "Severe"


#: (lowest total, highest total, band), in order.
SEVERITY_BANDS: tuple[tuple[int, int, Severity], ...] = (
    (0, 4, Severity.NONE_MINIMAL),
    (5, 9, Severity.MILD),
    (10, 14, Severity.MODERATE),
    (15, 19, Severity.MODERATELY_SEVERE),
    (20, 27, Severity.SEVERE),
)

REMISSION_BELOW = 5  # total below this is remission
RESPONSE_REDUCTION = 0.5  # at least this share of the baseline removed is response
MEANINGFUL_CHANGE = 5  # points


def severity_for_total(total: int) -> Severity:
    """The severity band of a PHQ-9 total (0-27)."""
    for low, high, band in SEVERITY_BANDS:
        if low <= total <= high:
            return band
    raise ValueError(f"A PHQ-9 total is 0-{MAX_TOTAL}, not {total}.")


def severity_case(field: str = "total") -> models.Case:
    """The same bands as a database expression, for aggregating in SQL."""
    return models.Case(
        *(
            models.When(**{f"{field}__range": (low, high)}, then=models.Value(band.value))
            for low, high, band in SEVERITY_BANDS
        ),
        output_field=models.CharField(),
    )


@dataclass(frozen=True)
class Outcome:
    """Where a PHQ-9 total stands against the episode's baseline."""

    baseline: int | None
    current: int
    #: current - baseline in points; negative is improvement. None without a baseline.
    change: int | None
    #: >= 50 % reduction from baseline; None without a baseline.
    response: bool | None
    #: total below 5.
    remission: bool
    #: a change of 5 points or more either way; None without a baseline.
    meaningful_change: bool | None


def phq9_outcome(*, baseline: int | None, current: int) -> Outcome:
    """Response, remission and change of ``current`` against ``baseline`` (totals 0-27)."""
    remission = current < REMISSION_BELOW
    if baseline is None:
        return Outcome(baseline, current, None, None, remission, None)
    change = current - baseline
    # A baseline of 0 cannot be halved: no response is possible from there.
    response = baseline > 0 and (baseline - current) >= RESPONSE_REDUCTION * baseline
    return Outcome(baseline, current, change, response, remission, abs(change) >= MEANINGFUL_CHANGE)


def phq9_baseline(*, patient: Patient, first_infusion_at: datetime) -> PHQ9Assessment | None:
    """The episode's baseline: the latest PHQ-9 in the window before its first infusion.

    The window is ``CLINIC_BASELINE_WINDOW_DAYS`` (default 14) days long and ends at the
    first infusion; a PHQ-9 taken after the first infusion is never a baseline.
    """
    window_start = first_infusion_at - timedelta(days=settings.CLINIC_BASELINE_WINDOW_DAYS)
    return (
        patient.phq9_assessments.filter(taken_at__gte=window_start, taken_at__lte=first_infusion_at)
        .order_by("-taken_at")
        .first()
    )
