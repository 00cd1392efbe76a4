"""Forms of the infusion pages.

They only parse and label what is typed: every rule (spacing, closed days, dose, locks,
thresholds) is checked by ``sessions.services``, whose errors are put back on the form
with ``clinic.forms.add_service_errors``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from clinic.forms import DateInput, PlausibleDateField, TimeInput
from patients.models import Diagnosis
from patients.services import parse_weight_kg
from sessions.models import (
    DISSOCIATION_MAX,
    DissociationScale,
    InfusionSession,
    Protocol,
    Route,
    SessionStatus,
    SideEffectKind,
    SideEffectSeverity,
)
from sessions.outcomes import OutcomeFilters
from sessions.scheduling import clinic_datetime, default_appointment_time
from sessions.vitals import VitalPhase

NOW_HELP = "Leave empty for now."


def _one_line_ending(text: str) -> str:
    # Browsers send textarea line breaks as CRLF; the record keeps LF, so an unchanged
    # note never looks amended.
    return text.replace("\r\n", "\n")


def _optional_time(label: str) -> forms.TimeField:
    return forms.TimeField(label=label, required=False, widget=TimeInput(), help_text=NOW_HELP)


def at_session_day(session: InfusionSession, at: dt.time | None) -> dt.datetime | None:
    """A clock time typed on the session's page, on the session's clinic day (None = now)."""
    return clinic_datetime(session.scheduled_on, at) if at is not None else None


# --- Series and appointments -------------------------------------------------------


class SeriesForm(forms.Form):
    protocol = forms.ModelChoiceField(queryset=Protocol.objects.filter(is_active=True), empty_label="Choose a protocol")
    start_date = PlausibleDateField(label="First infusion on or after", widget=DateInput())
    appointment_time = forms.TimeField(label="Appointment time", widget=TimeInput())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["start_date"].initial = timezone.localdate()
        self.fields["appointment_time"].initial = default_appointment_time()


class AppointmentForm(forms.Form):
    """A day and a clock time in the clinic's time zone."""

    date = PlausibleDateField(widget=DateInput())
    time = forms.TimeField(widget=TimeInput())

    #: The services name the moment ``scheduled_at``; it is shown next to the date.
    SERVICE_ALIASES = {"scheduled_at": "date"}

    def scheduled_at(self) -> dt.datetime:
        return clinic_datetime(self.cleaned_data["date"], self.cleaned_data["time"])


class CloseForm(forms.Form):
    OUTCOMES = [
        (SessionStatus.CANCELLED.value, "Cancelled (the clinic or the patient called it off)"),
        (SessionStatus.MISSED.value, "Missed (the patient did not come)"),
    ]

    outcome = forms.ChoiceField(choices=OUTCOMES, widget=forms.RadioSelect, initial=SessionStatus.CANCELLED.value)
    reason = forms.CharField(max_length=200, help_text="Kept with the appointment (at most 200 characters).")


# --- Logging an infusion ----------------------------------------------------------


class LogForm(forms.Form):
    """The infusion page holds several forms at once: each gets its own element ids."""

    id_prefix = "log"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", f"{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)


class StartForm(LogForm):
    """Confirm the weight (weight-based doses only); the service parses and checks it."""

    weight_kg = forms.CharField(
        label="Weight (kg)",
        max_length=8,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        help_text="Confirm today's weight: the dose is mg/kg x this weight.",
    )
    started_at = _optional_time("Started at")

    id_prefix = "start"

    def __init__(self, *args, weight_based: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not weight_based:
            del self.fields["weight_kg"]


class VitalsForm(LogForm):
    id_prefix = "vitals"
    phase = forms.ChoiceField(choices=VitalPhase.choices)
    taken_at = _optional_time("Taken at")
    systolic = forms.IntegerField(label="Systolic (mmHg)", required=False, min_value=0)
    diastolic = forms.IntegerField(label="Diastolic (mmHg)", required=False, min_value=0)
    heart_rate = forms.IntegerField(label="Heart rate (/min)", required=False, min_value=0)
    spo2 = forms.IntegerField(label="SpO2 (%)", required=False, min_value=0)

    def clean(self):
        data = super().clean()
        # One message next to the missing half (the database refuses half a pressure too).
        if data.get("systolic") is not None and data.get("diastolic") is None and "diastolic" not in self.errors:
            self.add_error("diastolic", "Give both blood pressure values.")
        if data.get("diastolic") is not None and data.get("systolic") is None and "systolic" not in self.errors:
            self.add_error("systolic", "Give both blood pressure values.")
        return data


class SideEffectForm(LogForm):
    id_prefix = "effect"
    kind = forms.ChoiceField(label="Side effect", choices=[("", "Choose"), *SideEffectKind.choices])
    severity = forms.ChoiceField(choices=SideEffectSeverity.choices)
    note = forms.CharField(max_length=300, required=False, help_text="Required for 'Other'.")


class DissociationFields(LogForm):
    dissociation_scale = forms.ChoiceField(
        label="Dissociation scale", choices=[("", "Not scored"), *DissociationScale.choices], required=False
    )
    dissociation_score = forms.IntegerField(label="Dissociation score", required=False, min_value=0)

    def clean(self):
        data = super().clean()
        scale, score = data.get("dissociation_scale"), data.get("dissociation_score")
        if "dissociation_score" in self.errors:
            return data
        if scale and score is None:
            self.add_error("dissociation_score", "Give the score on the chosen scale.")
        elif score is not None and not scale:
            self.add_error("dissociation_scale", "Choose the scale the score was taken on.")
        elif scale and score > DISSOCIATION_MAX[scale]:
            self.add_error(
                "dissociation_score",
                f"{DissociationScale(scale).label}: the score is at most {DISSOCIATION_MAX[scale]}.",
            )
        return data


class CompleteForm(DissociationFields):
    id_prefix = "complete"
    ended_at = _optional_time("Ended at")
    notes = forms.CharField(label="Clinical notes", required=False, widget=forms.Textarea(attrs={"rows": 3}))

    field_order = ["ended_at", "dissociation_scale", "dissociation_score", "notes"]

    def clean_notes(self) -> str:
        return _one_line_ending(self.cleaned_data["notes"])


class DischargeForm(LogForm):
    id_prefix = "discharge"
    discharged_at = _optional_time("Discharged at")


class AmendForm(DissociationFields):
    """The reason and the corrected values; only fields that differ become the amendment."""

    id_prefix = "amend"

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="Why the signed record is corrected.")
    notes = forms.CharField(label="Clinical notes", required=False, widget=forms.Textarea(attrs={"rows": 3}))
    weight_kg_used = forms.CharField(
        label="Weight used (kg)",
        required=False,
        max_length=8,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        help_text="A corrected weight recomputes the dose from the mg/kg.",
    )

    field_order = ["reason", "notes", "dissociation_scale", "dissociation_score", "weight_kg_used"]
    AMENDED = ("notes", "dissociation_scale", "dissociation_score", "weight_kg_used")

    def __init__(self, *args, session: InfusionSession, **kwargs):
        self.session = session
        kwargs.setdefault("initial", {field: getattr(session, field) for field in self.AMENDED})
        super().__init__(*args, **kwargs)
        if not session.is_weight_based:
            del self.fields["weight_kg_used"]

    def clean_notes(self) -> str:
        return _one_line_ending(self.cleaned_data["notes"])

    def clean_weight_kg_used(self) -> Decimal | None:
        value = self.cleaned_data.get("weight_kg_used")
        if not value:
            if self.session.weight_kg_used is not None:
                raise ValidationError("Give the corrected weight (the weight cannot be removed).")
            return None
        try:
            return parse_weight_kg(value, field="weight_kg_used")
        except ValidationError as error:
            raise ValidationError(error.message_dict["weight_kg_used"]) from None

    def changes(self) -> dict:
        """The amended fields whose value differs from the signed record."""
        return {
            field: self.cleaned_data[field]
            for field in self.AMENDED
            if field in self.fields and self.cleaned_data[field] != getattr(self.session, field)
        }


# --- The clinic's outcomes ------------------------------------------------------------


class OutcomesFilterForm(forms.Form):
    """Which induction series the outcomes page counts (every field optional: empty = all)."""

    protocol = forms.ModelChoiceField(queryset=Protocol.objects.all(), required=False, empty_label="All protocols")
    route = forms.ChoiceField(choices=[("", "All routes"), *Route.choices], required=False)
    diagnosis = forms.ChoiceField(
        label="Primary diagnosis", choices=[("", "All diagnoses"), *Diagnosis.choices], required=False
    )
    started_from = PlausibleDateField(label="Series started from", required=False, widget=DateInput())
    started_to = PlausibleDateField(label="Series started until", required=False, widget=DateInput())

    def clean(self) -> dict:
        data = super().clean()
        started_from, started_to = data.get("started_from"), data.get("started_to")
        if started_from and started_to and started_to < started_from:
            self.add_error("started_to", "This date is before the first one; swap them or widen the range.")
        return data

    def filters(self) -> OutcomeFilters:
        """The cleaned choices for ``sessions.outcomes`` (call after ``is_valid``)."""
        data = self.cleaned_data
        return OutcomeFilters(
            protocol_id=data["protocol"].pk if data.get("protocol") else None,
            route=data.get("route") or "",
            diagnosis=data.get("diagnosis") or "",
            started_from=data.get("started_from"),
            started_to=data.get("started_to"),
        )
