"""The patient portal: a patient sees only their own progress and appointments."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy

from clinic.charts import csv_response
from clinic.decorators import patient_required
from clinic.forms import add_service_errors
from patients.charts import response_curve_chart
from patients.forms import PHQ9Form
from patients.models import Patient, PHQ9Source
from patients.phq9 import ITEM_FIELDS, SEVERITY_BANDS
from patients.services import phq9_record, portal_phq9_next_day
from sessions.models import SessionKind
from sessions.selectors import PatientHistory, response_curve_data


def _own_patient(request) -> Patient:
    try:
        return request.user.patient
    except Patient.DoesNotExist:
        raise PermissionDenied("This account is not linked to a patient record.") from None


@patient_required
def home(request):
    patient = _own_patient(request)
    # The patient's PHQ-9s, infusions and series read once (PatientHistory) for the curve,
    # the latest questionnaire and the appointments.
    history = PatientHistory.load(patient)
    chart = response_curve_chart(
        history.curve(clinical=True),
        csv_url=reverse("portal:download"),
        clinical=True,
        title="Your PHQ-9 scores over time",
    )
    return render(
        request,
        "portal/home.html",
        {
            "nav": "portal",
            "patient": patient,
            "latest": history.latest,
            "chart": chart,
            "next_phq9_day": portal_phq9_next_day(patient),
            "upcoming": history.upcoming(),
            "past": history.completed()[::-1],
            "BOOSTER": SessionKind.BOOSTER,
        },
    )


@patient_required
def download(request):
    """The patient's own PHQ-9 scores as CSV."""
    chart = response_curve_chart(response_curve_data(_own_patient(request)), csv_url="", clinical=True)
    return csv_response("my-phq9-scores.csv", chart.headers, chart.rows)


class PortalPHQ9Form(PHQ9Form):
    """The same questionnaire, filled in now by the patient (no time to choose)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["taken_at"]
        self.fields["difficulty"].label = (
            "If you checked off any problems, how difficult have these problems made it for you to do your work, "
            "take care of things at home, or get along with other people?"
        )


@patient_required
def phq9(request):
    patient = _own_patient(request)
    next_day = portal_phq9_next_day(patient)
    form = PortalPHQ9Form(request.POST or None)
    # A POST is always read: past the daily limit the service still records an item-9 answer.
    if request.method == "POST" and form.is_valid():
        try:
            assessment = phq9_record(
                patient=patient,
                answers=form.answers(),
                difficulty=form.cleaned_data["difficulty"],
                source=PHQ9Source.PORTAL,
                entered_by=request.user,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            if assessment.has_safety_flag:
                # Crisis resources at once (a page of its own, so reloading it is safe); the
                # clinicians have already been alerted.
                return redirect(reverse("portal:crisis") + "?sent=1")
            messages.success(
                request, f"Thank you. Your score today is {assessment.total} ({assessment.severity.label.lower()})."
            )
            return redirect("portal:home")
    bands = [{"low": low, "high": high, "value": band.value, "label": band.label} for low, high, band in SEVERITY_BANDS]
    return render(
        request,
        "portal/phq9.html",
        {
            "nav": "portal",
            "form": form,
            "next_day": next_day,
            "bands": bands,
            "item_names": json.dumps(ITEM_FIELDS),
        },
        status=400 if form.errors else 200,
    )


@patient_required
def crisis(request):
    return render(request, "portal/crisis.html", {"nav": "portal", "sent": request.GET.get("sent") == "1"})


class WelcomeView(auth_views.PasswordResetConfirmView):
    """The invitation link: the patient chooses a password (the link then stops working)."""

    template_name = "portal/welcome.html"
    success_url = reverse_lazy("login")

    def form_valid(self, form):
        messages.success(self.request, "Your password is set. Log in to see your progress.")
        return super().form_valid(form)
