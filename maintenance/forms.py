"""Forms of the scheduler's pages: book a booster, edit a maintenance plan.

They only collect and type what was entered; the rules live in maintenance.services
and the model, and their ValidationErrors are shown next to the field they name.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.conf import settings
from django.db.models import Q

from clinic.forms import DateInput, PlausibleDateField, TimeInput
from maintenance.models import MAX_INTERVAL_DAYS, MIN_INTERVAL_DAYS, MaintenancePlan
from maintenance.services import PLAN_FIELDS
from sessions.models import Protocol
from sessions.scheduling import clinic_datetime

#: The booster's usual hour when the scheduler does not choose another.
DEFAULT_BOOSTER_TIME = dt.time(10, 0)


def weeks(days: int | None) -> str:
    """``28`` -> "4 weeks", ``30`` -> "4 weeks 2 days", ``7`` -> "1 week"."""
    if days is None:
        return ""
    whole, rest = divmod(days, 7)
    parts = []
    if whole:
        parts.append(f"{whole} week{'s' if whole != 1 else ''}")
    if rest or not whole:
        parts.append(f"{rest} day{'s' if rest != 1 else ''}")
    return " ".join(parts)


class BoosterForm(forms.Form):
    date = PlausibleDateField(label="Date", widget=DateInput)
    time = forms.TimeField(
        label="Time",
        widget=TimeInput,
        help_text=f"Clinic time ({settings.TIME_ZONE}).",
    )

    def __init__(self, *args, suggested: dt.date, **kwargs):
        kwargs.setdefault("initial", {"date": suggested, "time": DEFAULT_BOOSTER_TIME})
        super().__init__(*args, **kwargs)
        self.fields[
            "date"
        ].help_text = (
            f"Suggested: {suggested:%a %d %b %Y} (the due date or the next open clinic day, never before today)."
        )

    def scheduled_at(self) -> dt.datetime:
        """The booking as an aware datetime in the clinic's time zone (after ``is_valid``)."""
        return clinic_datetime(self.cleaned_data["date"], self.cleaned_data["time"])

    #: The services name the moment ``scheduled_at``; here it is the date that is wrong.
    SERVICE_ALIASES = {"scheduled_at": "date"}


_INTERVAL_HELP = (
    f"Days after the last infusion, {MIN_INTERVAL_DAYS}-{MAX_INTERVAL_DAYS}. "
    "7 days = 1 week, 28 = 4 weeks, 42 = 6 weeks, 56 = 8 weeks, 84 = 12 weeks."
)


class PlanForm(forms.ModelForm):
    class Meta:
        model = MaintenancePlan
        fields = PLAN_FIELDS
        labels = {
            "protocol": "Booster protocol",
            "target_interval_days": "Target interval (days)",
            "min_interval_days": "Minimum interval (days)",
            "max_interval_days": "Maximum interval (days)",
            "trigger_phq9_threshold": "Symptom trigger: PHQ-9 at or above",
            "trigger_phq9_rise": "Symptom trigger: PHQ-9 rise over the post-induction low (points)",
            "is_active": "Plan is active (boosters are tracked and reminded)",
            "notes": "Scheduling notes",
        }
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.protocol_id if self.instance else None
        self.fields["protocol"].queryset = Protocol.objects.filter(Q(is_active=True) | Q(pk=current))
        self.fields["protocol"].help_text = "Route and dose of each booster. Only protocols in use are listed."
        self.fields["target_interval_days"].help_text = f"When the next booster is due. {_INTERVAL_HELP}" + self._now(
            "target_interval_days"
        )
        self.fields["min_interval_days"].help_text = (
            "A symptom trigger never brings a booster closer than this; no booster can be booked earlier. "
            "Leave empty for none." + self._now("min_interval_days")
        )
        self.fields["max_interval_days"].help_text = (
            "After this the booster is overdue. Leave empty to use the clinic's "
            f"{settings.CLINIC_BOOSTER_OVERDUE_GRACE_DAYS}-day grace after the target." + self._now("max_interval_days")
        )
        self.fields[
            "trigger_phq9_threshold"
        ].help_text = (
            "A PHQ-9 total (1-27) at or above this brings the next booster forward. Leave empty to turn it off."
        )
        self.fields["trigger_phq9_rise"].help_text = (
            "A rise of this many points over the lowest score since induction brings the next booster forward. "
            "Leave empty to turn it off."
        )
        for name in ("target_interval_days", "min_interval_days", "max_interval_days"):
            self.fields[name].widget.attrs.update(min=MIN_INTERVAL_DAYS, max=MAX_INTERVAL_DAYS)
        for name in ("trigger_phq9_threshold", "trigger_phq9_rise"):
            self.fields[name].widget.attrs.update(min=1, max=27)

    def _now(self, name: str) -> str:
        """The saved value in weeks, as a reminder while editing (nothing for a new plan)."""
        if self.instance._state.adding:
            return ""
        value = self.initial.get(name)
        return f" Now {value} days ({weeks(value)})." if isinstance(value, int) else ""

    def plan_fields(self) -> dict:
        return {name: self.cleaned_data[name] for name in PLAN_FIELDS}
