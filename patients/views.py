"""Staff pages about patients: the list, the patient page, registration, PHQ-9s."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from clinic.charts import Chart, csv_response
from clinic.decorators import clinician_required, staff_required
from clinic.forms import add_service_errors
from maintenance.models import MaintenancePlan
from maintenance.selectors import booster_status
from patients import access
from patients.charts import response_curve, response_curve_summary, response_curve_table
from patients.forms import AcknowledgeForm, PatientFilter, PatientForm, PHQ9Form
from patients.models import Patient, PHQ9Assessment
from patients.phq9 import ITEM_FIELDS, SEVERITY_BANDS
from patients.services import patient_invite_to_portal, patient_save, phq9_acknowledge_safety, phq9_record
from sessions.models import InfusionSession, SessionStatus
from sessions.selectors import patient_timeline, patient_treatment_summary, response_curve_data
from sessions.services import series_gap_report

PAGE_SIZE = 25


def _patient(request, pk) -> Patient:
    patient = get_object_or_404(Patient.objects.select_related("primary_clinician", "user"), pk=pk)
    if not access.can_view_patient(request.user, patient):
        raise PermissionDenied
    return patient


@staff_required
def patient_list(request):
    latest = PHQ9Assessment.objects.filter(patient=OuterRef("pk")).order_by("-taken_at")
    upcoming = InfusionSession.objects.filter(
        patient=OuterRef("pk"), status=SessionStatus.SCHEDULED, scheduled_on__gte=timezone.localdate()
    ).order_by("scheduled_at")
    patients = Patient.objects.annotate(
        latest_total=Subquery(latest.values("total")[:1]),
        latest_taken_at=Subquery(latest.values("taken_at")[:1]),
        next_appointment=Subquery(upcoming.values("scheduled_at")[:1]),
    ).order_by("last_name", "first_name")
    filters = PatientFilter(request.GET, queryset=patients)
    page = Paginator(filters.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "patients/list.html",
        {"nav": "patients", "filters": filters, "page": page, "query": query.urlencode()},
    )


@staff_required
def patient_create(request):
    form = PatientForm(request.POST or None, clinical=access.can_record_clinical(request.user))
    if request.method == "POST" and form.is_valid():
        try:
            patient = patient_save(patient=form.save(commit=False), by=request.user)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"{patient.full_name} is registered.")
            return redirect(patient)
    return render(request, "patients/form.html", {"nav": "patients", "form": form, "patient": None})


@staff_required
def patient_edit(request, pk):
    patient = _patient(request, pk)
    form = PatientForm(request.POST or None, instance=patient, clinical=access.can_record_clinical(request.user))
    if request.method == "POST" and form.is_valid():
        try:
            patient_save(patient=form.save(commit=False), by=request.user)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, "The patient's record is saved.")
            return redirect(patient)
    return render(request, "patients/form.html", {"nav": "patients", "form": form, "patient": patient})


def response_curve_chart(patient: Patient, *, csv_url: str, clinical: bool, title: str = "Response curve") -> Chart:
    """The patient's response curve with its text alternative (staff page and portal).

    ``clinical``: whether the reader may see item-9 answers (clinicians, and the patient
    who gave them; not schedulers).
    """
    data = response_curve_data(patient, clinical=clinical)
    headers, rows = response_curve_table(data, clinical=clinical)
    return Chart(
        id="response-curve",
        title=title,
        figure=response_curve(data),
        summary=response_curve_summary(data),
        headers=headers,
        rows=rows,
        csv_url=csv_url,
    )


@staff_required
def patient_detail(request, pk):
    patient = _patient(request, pk)
    chart = response_curve_chart(
        patient, csv_url="?download=response_curve", clinical=access.can_view_clinical(request.user, patient)
    )
    if request.GET.get("download") == "response_curve":
        return csv_response(f"phq9-{patient.mrn}.csv", chart.headers, chart.rows)
    summary = patient_treatment_summary(patient)
    upcoming = patient.infusion_sessions.filter(
        status=SessionStatus.SCHEDULED, scheduled_on__gte=timezone.localdate()
    ).order_by("scheduled_at")
    open_alerts = patient.phq9_assessments.filter(item_9__gt=0, safety_acknowledged_at__isnull=True).order_by(
        "taken_at"
    )
    series = summary.series
    return render(
        request,
        "patients/detail.html",
        {
            "nav": "patients",
            "patient": patient,
            "summary": summary,
            "booster": booster_status(patient=patient),
            "plan": MaintenancePlan.objects.filter(patient=patient).select_related("protocol").first(),
            "upcoming": upcoming,
            "open_alerts": open_alerts,
            "acknowledge_form": AcknowledgeForm(),
            "timeline": patient_timeline(patient, clinical=access.can_view_clinical(request.user, patient)),
            "series_gaps": series_gap_report(series) if series and series.is_in_progress else [],
            "can_start_series": not (series and series.is_in_progress),
            "show_clinical": access.can_view_clinical(request.user, patient),
            "chart": chart,
        },
    )


@clinician_required
def phq9_create(request, pk):
    patient = _patient(request, pk)
    form = PHQ9Form(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            assessment = phq9_record(
                patient=patient,
                answers=form.answers(),
                difficulty=form.cleaned_data["difficulty"],
                taken_at=form.cleaned_data["taken_at"],
                entered_by=request.user,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            band = assessment.severity.label.lower()
            messages.success(request, f"PHQ-9 saved: {assessment.total} ({band}).")
            if assessment.has_safety_flag:
                messages.warning(
                    request,
                    "Item 9 was answered above 0: clinicians have been alerted. Acknowledge the alert with the "
                    "action taken.",
                )
            return redirect(patient)
    bands = [{"low": low, "high": high, "value": band.value, "label": band.label} for low, high, band in SEVERITY_BANDS]
    return render(
        request,
        "patients/phq9_form.html",
        {"nav": "patients", "patient": patient, "form": form, "bands": bands, "item_names": json.dumps(ITEM_FIELDS)},
        status=400 if form.errors else 200,
    )


@require_POST
@clinician_required
def phq9_acknowledge(request, pk):
    assessment = get_object_or_404(PHQ9Assessment.objects.select_related("patient"), pk=pk)
    patient = _patient(request, assessment.patient_id)
    form = AcknowledgeForm(request.POST)
    if form.is_valid():
        try:
            phq9_acknowledge_safety(assessment=assessment, by=request.user, action=form.cleaned_data["action"])
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, "Safety alert acknowledged.")
    else:
        messages.error(request, "Describe the action taken to acknowledge the alert.")
    return redirect(patient)


@require_POST
@staff_required
def patient_invite(request, pk):
    patient = _patient(request, pk)

    def link(uidb64: str, token: str) -> str:
        return request.build_absolute_uri(reverse("portal:welcome", kwargs={"uidb64": uidb64, "token": token}))

    try:
        patient_invite_to_portal(patient=patient, by=request.user, set_password_url=link)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Invitation sent to {patient.email}. The link works once.")
    return redirect(patient)
