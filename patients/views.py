"""Staff pages about patients: the list, the patient page, registration, PHQ-9s."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from django.conf import settings
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
from patients.charts import response_curve_spec, response_curve_summary, response_curve_table
from patients.forms import AcknowledgeForm, PatientFilter, PatientForm, PHQ9Form
from patients.models import Patient, PHQ9Assessment
from patients.phq9 import ITEM_FIELDS, SEVERITY_BANDS, phq9_outcome
from patients.services import patient_invite_to_portal, patient_save, phq9_acknowledge_safety, phq9_record
from sessions.models import OCCUPYING_STATUSES, InductionSeries, InfusionSession, SessionKind, SessionStatus
from sessions.scheduling import clinic_datetime
from sessions.selectors import (
    CurveInfusion,
    CurvePoint,
    ResponseCurveData,
    TimelineEntry,
    TreatmentSummary,
    response_curve_data,
)
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


@dataclass
class PatientHistory:
    """All of a patient's PHQ-9s, infusions and series, read once (three queries) for the
    patient page, which derives from them what ``sessions.selectors`` would read again
    and again: the response curve, the treatment summary, the timeline, the upcoming
    appointments and the open safety alerts. Read per request: nothing is cached."""

    phq9s: list[PHQ9Assessment]  # oldest first
    sessions: list[InfusionSession]  # by scheduled_at, with their series
    series: list[InductionSeries]  # newest first, with their protocol

    #: The columns the pages show (the rest, free text and bookkeeping, is not read).
    PHQ9_FIELDS = ("patient_id", "taken_at", "total", "item_9", "source", "safety_acknowledged_at")
    SESSION_FIELDS = (
        *("patient_id", "series_id", "kind", "status", "scheduled_at", "scheduled_on", "started_at", "route"),
        "series__planned_infusions",
    )

    @classmethod
    def load(cls, patient: Patient) -> PatientHistory:
        return cls(
            phq9s=list(patient.phq9_assessments.only(*cls.PHQ9_FIELDS).order_by("taken_at")),
            sessions=list(
                patient.infusion_sessions.select_related("series").only(*cls.SESSION_FIELDS).order_by("scheduled_at")
            ),
            series=list(patient.series.select_related("protocol").order_by("-start_date")),
        )

    @property
    def current_series(self) -> InductionSeries | None:
        """The latest series (the current episode), with its completed infusions counted."""
        if not self.series:
            return None
        series = self.series[0]
        series.completed_count = sum(
            1 for s in self.sessions if s.series_id == series.pk and s.status == SessionStatus.COMPLETED
        )
        return series

    def baseline(self, series: InductionSeries | None) -> PHQ9Assessment | None:
        """As ``InductionSeries.baseline``: the latest PHQ-9 in the window before the
        series' first (occupying) infusion."""
        if series is None:
            return None
        first = next((s for s in self.sessions if s.series_id == series.pk and s.status in OCCUPYING_STATUSES), None)
        if first is None:
            return None
        first_at = first.started_at or first.scheduled_at
        window_start = first_at - dt.timedelta(days=settings.CLINIC_BASELINE_WINDOW_DAYS)
        in_window = [a for a in self.phq9s if window_start <= a.taken_at <= first_at]
        return in_window[-1] if in_window else None

    def upcoming(self) -> list[InfusionSession]:
        """Booked infusions from today on, soonest first."""
        today = timezone.localdate()
        return [s for s in self.sessions if s.status == SessionStatus.SCHEDULED and s.scheduled_on >= today]

    def curve(self, *, clinical: bool, baseline: PHQ9Assessment | None) -> ResponseCurveData:
        """As ``sessions.selectors.response_curve_data``."""
        infusions: list[CurveInfusion] = []
        by_day: dict[dt.date, str] = {}
        numbers: dict = {}
        for session in self.sessions:
            if session.status != SessionStatus.COMPLETED:
                continue
            if session.kind == SessionKind.BOOSTER:
                label = "Booster infusion"
            else:
                numbers[session.series_id] = numbers.get(session.series_id, 0) + 1
                label = f"Induction infusion {numbers[session.series_id]} of {session.series.planned_infusions}"
            infusions.append(
                CurveInfusion(session.started_at or session.scheduled_at, label, session.kind == SessionKind.BOOSTER)
            )
            by_day[session.scheduled_on] = label
        points = [
            CurvePoint(
                taken_at=assessment.taken_at,
                total=assessment.total,
                band=assessment.severity.label,
                item_9=assessment.item_9 if clinical else 0,
                infusion=by_day.get(timezone.localdate(assessment.taken_at), ""),
            )
            for assessment in self.phq9s
        ]
        return ResponseCurveData(points=points, infusions=infusions, baseline=baseline)

    def timeline(self, *, clinical: bool) -> list[TimelineEntry]:
        """As ``sessions.selectors.patient_timeline``: newest first."""
        entries: list[TimelineEntry] = []
        for assessment in reversed(self.phq9s):
            flag = " · item 9 answered above 0" if clinical and assessment.has_safety_flag else ""
            severity = assessment.severity
            entries.append(
                TimelineEntry(
                    when=assessment.taken_at,
                    kind="phq9",
                    title=f"PHQ-9: {assessment.total}",
                    detail=f"{assessment.get_source_display()}{flag}",
                    badge=severity.value,
                    badge_label=severity.label,
                    record=assessment,
                )
            )
        numbers: dict = {}
        for session in self.sessions:
            if session.kind == SessionKind.BOOSTER:
                title = "Booster infusion"
            elif session.status == SessionStatus.COMPLETED:
                numbers[session.series_id] = numbers.get(session.series_id, 0) + 1
                title = f"Induction infusion {numbers[session.series_id]} of {session.series.planned_infusions}"
            else:
                title = "Induction infusion"
            entries.append(
                TimelineEntry(
                    when=session.started_at or session.scheduled_at,
                    kind="booster" if session.kind == SessionKind.BOOSTER else "infusion",
                    title=title,
                    detail=session.get_route_display(),
                    badge=session.status,
                    badge_label=session.get_status_display(),
                    record=session,
                )
            )
        for series in self.series:
            detail = series.protocol.name
            if series.discontinued_at:
                detail += f" · discontinued: {series.discontinued_reason}" if clinical else " · discontinued"
            entries.append(
                TimelineEntry(
                    when=clinic_datetime(series.start_date, dt.time.min),
                    kind="series",
                    title="Induction series started",
                    detail=detail,
                    record=series,
                )
            )
        entries.sort(key=lambda entry: entry.when, reverse=True)
        return entries


def _chart(data: ResponseCurveData, *, csv_url: str, clinical: bool, title: str) -> Chart:
    headers, rows = response_curve_table(data, clinical=clinical)
    return Chart(
        id="response-curve",
        title=title,
        # The figure as a plain dict (the same JSON as the plotly figure, built cheaply).
        figure=response_curve_spec(data),
        summary=response_curve_summary(data),
        headers=headers,
        rows=rows,
        csv_url=csv_url,
    )


def response_curve_chart(patient: Patient, *, csv_url: str, clinical: bool, title: str = "Response curve") -> Chart:
    """The patient's response curve with its text alternative (staff page and portal).

    ``clinical``: whether the reader may see item-9 answers (clinicians, and the patient
    who gave them; not schedulers).
    """
    return _chart(response_curve_data(patient, clinical=clinical), csv_url=csv_url, clinical=clinical, title=title)


@staff_required
def patient_detail(request, pk):
    patient = _patient(request, pk)
    clinical = access.can_view_clinical(request.user, patient)
    history = PatientHistory.load(patient)
    series = history.current_series
    baseline = history.baseline(series)
    chart = _chart(
        history.curve(clinical=clinical, baseline=baseline),
        csv_url="?download=response_curve",
        clinical=clinical,
        title="Response curve",
    )
    if request.GET.get("download") == "response_curve":
        return csv_response(f"phq9-{patient.mrn}.csv", chart.headers, chart.rows)
    latest = history.phq9s[-1] if history.phq9s else None
    summary = TreatmentSummary(
        series=series,
        baseline=baseline,
        latest=latest,
        outcome=phq9_outcome(baseline=baseline.total if baseline else None, current=latest.total) if latest else None,
    )
    open_alerts = [a for a in history.phq9s if a.item_9 > 0 and a.safety_acknowledged_at is None]
    # Years of history make a long timeline: the newest entries, older ones a page further.
    timeline = Paginator(history.timeline(clinical=clinical), TIMELINE_PAGE_SIZE).get_page(request.GET.get("timeline"))
    return render(
        request,
        "patients/detail.html",
        {
            "nav": "patients",
            "patient": patient,
            "summary": summary,
            "booster": booster_status(patient=patient),
            "plan": MaintenancePlan.objects.filter(patient=patient).select_related("protocol").first(),
            "upcoming": history.upcoming(),
            "open_alerts": open_alerts,
            "acknowledge_form": AcknowledgeForm(),
            "timeline": timeline,
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
