"""Forms of the patient pages: registration, search, PHQ-9 entry and acknowledgement."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q
from django.utils import timezone

from clinic.forms import DateInput, validate_plausible_day
from patients.access import Role
from patients.models import Diagnosis, Patient, PatientStatus
from patients.phq9 import ITEM_FIELDS, ITEM_QUESTIONS, Answer, Difficulty


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = [
            "mrn",
            "first_name",
            "last_name",
            "date_of_birth",
            "primary_diagnosis",
            "status",
            "primary_clinician",
            "weight_kg",
            "weight_recorded_on",
            "email",
            "accepts_email_reminders",
            "phone",
            "address",
            "emergency_contact_name",
            "emergency_contact_phone",
        ]
        widgets = {
            "date_of_birth": DateInput(),
            "weight_recorded_on": DateInput(),
            "address": forms.Textarea(attrs={"rows": 3}),
        }

    #: Weight sets doses: only clinicians record it.
    CLINICAL_FIELDS = ("weight_kg", "weight_recorded_on")

    def __init__(self, *args, clinical: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not clinical:
            for name in self.CLINICAL_FIELDS:
                del self.fields[name]
        clinicians = self.fields["primary_clinician"]
        clinicians.queryset = clinicians.queryset.filter(groups__name=Role.CLINICIAN.value, is_active=True).order_by(
            "last_name", "first_name"
        )
        clinicians.label_from_instance = lambda user: user.get_full_name() or user.username
        if "weight_kg" in self.fields:
            self.fields["weight_kg"].widget.attrs.update({"step": "0.1", "inputmode": "decimal"})


class PatientFilter(django_filters.FilterSet):
    """The patient list: search by name or record number, filter by status and diagnosis."""

    q = django_filters.CharFilter(method="search", label="Name or record number")
    status = django_filters.ChoiceFilter(choices=PatientStatus.choices, empty_label="Any status")
    primary_diagnosis = django_filters.ChoiceFilter(
        choices=Diagnosis.choices, label="Diagnosis", empty_label="Any diagnosis"
    )

    class Meta:
        model = Patient
        fields = ["q", "status", "primary_diagnosis"]

    def search(self, queryset, name, value):
        for term in value.split():
            queryset = queryset.filter(
                Q(mrn__iexact=term)
                | Q(mrn__istartswith=term)
                | Q(first_name__icontains=term)
                | Q(last_name__icontains=term)
            )
        return queryset


class PHQ9Form(forms.Form):
    """The nine items (0-3) and the difficulty question, as the patient answered them."""

    taken_at = forms.DateTimeField(
        label="Taken at",
        validators=[validate_plausible_day],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="When the patient filled in the questionnaire.",
    )
    difficulty = forms.ChoiceField(
        label="How difficult have these problems made it to do your work, take care of things at home, "
        "or get along with other people?",
        choices=Difficulty.choices,
        widget=forms.RadioSelect,
        required=False,
        help_text="Recorded, never added to the total.",
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("taken_at", timezone.localtime().replace(second=0, microsecond=0))
        super().__init__(*args, **kwargs)
        for number, field in enumerate(ITEM_FIELDS, start=1):
            self.fields[field] = forms.TypedChoiceField(
                label=f"{number}. {ITEM_QUESTIONS[field]}",
                choices=Answer.choices,
                coerce=int,
                widget=forms.RadioSelect,
                error_messages={"required": "Answer this question: every item is needed for the total."},
            )
        # Items first, in order, then the difficulty question and the time.
        self.order_fields([*ITEM_FIELDS, "difficulty", "taken_at"])

    def items(self):
        return [self[field] for field in ITEM_FIELDS]

    def answers(self) -> dict[str, int]:
        return {field: self.cleaned_data[field] for field in ITEM_FIELDS}


class AcknowledgeForm(forms.Form):
    action = forms.CharField(
        label="Action taken",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What you did: e.g. called the patient, reviewed the safety plan, referred to crisis services.",
    )
