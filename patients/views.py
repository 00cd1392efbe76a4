"""Staff pages about patients: the list, the patient page, registration, PHQ-9s."""

from __future__ import annotations

import json
import uuid
from html import escape

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS_3
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST

from clinic.charts import csv_response
from clinic.decorators import clinician_required, staff_required
from clinic.forms import add_service_errors
from maintenance.selectors import booster_status_from_history
from patients import access
from patients.charts import response_curve_chart
from patients.forms import AcknowledgeForm, PatientFilter, PatientForm, PHQ9Form
from patients.models import Patient, PHQ9Assessment
from patients.phq9 import ITEM_FIELDS, SEVERITY_BANDS
from patients.services import patient_invite_to_portal, patient_save, phq9_acknowledge_safety, phq9_record
from sessions.models import InfusionSession, SessionStatus
from sessions.selectors import PatientHistory
from sessions.services import series_gap_report

PAGE_SIZE = 25
#: Timeline entries on the patient page, newest first; older ones on the next pages.
TIMELINE_PAGE_SIZE = 20


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


#: Any id: the infusion log's address is reversed once per page, then each id put in it.
_ANY_ID = uuid.UUID(int=0)


def _timeline_items(entries, *, clinical: bool) -> SafeString:
    """The timeline's ``<li>`` items for one page of entries, put together here rather than
    in the template (a dozen lookups, filters and a ``{% url %}`` per entry, twenty entries
    a page): each entry's day in the clinic's time (``date:"j M Y"``), its title (linked to
    the infusion's log for clinical readers), badge and detail, every value escaped."""
    tz = timezone.get_current_timezone()
    log_url = reverse("infusions:detail", args=[_ANY_ID])
    months = {}  # the month abbreviations of ``date:"M"``, translated once per page
    items = []
    for entry in entries:
        local = entry.when.astimezone(tz)
        if local.month not in months:
            months[local.month] = str(MONTHS_3[local.month]).title()
        title = escape(entry.title)
        if clinical and entry.kind in ("infusion", "booster"):
            title = f'<a href="{escape(log_url.replace(str(_ANY_ID), str(entry.record.pk)))}">{title}</a>'
        badge = (
            f' <span class="badge badge--{escape(entry.badge)}">{escape(entry.badge_label)}</span>'
            if entry.badge
            else ""
        )
        detail = f' <span class="muted small">· {escape(entry.detail)}</span>' if entry.detail else ""
        day = f"{local.day} {months[local.month]} {local.year:04d}"
        items.append(
            f'<li>\n      <time datetime="{local.isoformat()}">{day}</time>\n'
            f"      <div>\n        {title}{badge}{detail}\n      </div>\n    </li>"
        )
    return mark_safe("\n    ".join(items))


@staff_required
def patient_detail(request, pk):
    # The patient (with their clinician, login and maintenance plan) and their history in
    # one statement: the page derives everything else from them, booster status included.
    patient, history = PatientHistory.load_with_patient(pk)
    if patient is None:
        raise Http404("No Patient matches the given query.")
    if not access.can_view_patient(request.user, patient):
        raise PermissionDenied
    clinical = access.can_view_clinical(request.user, patient)
    chart = response_curve_chart(
        history.curve(clinical=clinical), csv_url="?download=response_curve", clinical=clinical
    )
    if request.GET.get("download") == "response_curve":
        return csv_response(f"phq9-{patient.mrn}.csv", chart.headers, chart.rows)
    plan = getattr(patient, "maintenance_plan", None)  # None: no plan
    series = history.current_series
    open_alerts = history.open_alerts()
    # Years of history make a long timeline: the newest entries, older ones a page further.
    timeline = Paginator(history.timeline(clinical=clinical), TIMELINE_PAGE_SIZE).get_page(request.GET.get("timeline"))
    return render(
        request,
        "patients/detail.html",
        {
            "nav": "patients",
            "patient": patient,
            "summary": history.summary(),
            "booster": booster_status_from_history(plan=plan, history=history),
            "plan": plan,
            "upcoming": history.upcoming(),
            "open_alerts": open_alerts,
            "acknowledge_form": AcknowledgeForm() if open_alerts else None,
            "timeline": timeline,
            "timeline_items": _timeline_items(timeline, clinical=clinical),
            # The numbers of the reversed list continue from page to page.
            "timeline_start": timeline.paginator.count - timeline.start_index() + 1,
            "series_gaps": series_gap_report(series) if series and series.is_in_progress else [],
            "can_start_series": not (series and series.is_in_progress),
            "show_clinical": clinical,
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
