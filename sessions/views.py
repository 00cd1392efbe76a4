"""Infusion pages: the clinician's day, the infusion log, series planning and the week calendar.

Views only read and call ``sessions.services``; every rule lives there. A form the
services refuse is shown again with its errors and what was typed, with status 422.
Clinical data (doses, vitals, notes) is on clinician-only pages; schedulers see
appointments (who, when, what kind), which is what scheduling needs.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from clinic.decorators import clinician_required, staff_required
from clinic.forms import add_service_errors, is_plausible_day
from patients.models import Patient, PHQ9Assessment
from patients.phq9 import severity_for_total
from patients.services import parse_weight_kg
from sessions import services
from sessions.dosing import weight_based_dose_mg
from sessions.forms import (
    AmendForm,
    AppointmentForm,
    CloseForm,
    CompleteForm,
    DischargeForm,
    SeriesForm,
    SideEffectForm,
    StartForm,
    VitalsForm,
    at_session_day,
)
from sessions.models import (
    OCCUPYING_STATUSES,
    DissociationScale,
    InductionSeries,
    InfusionSession,
    SessionKind,
    SessionStatus,
)
from sessions.scheduling import closed_dates_between, default_appointment_time, is_open_day
from sessions.vitals import VitalPhase

#: Status of a page shown again because what was submitted was refused.
UNPROCESSABLE = 422
#: Infusions of a series counted as "early": severe blood-pressure rises cluster there.
EARLY_INFUSIONS = 3


# --- Reading helpers -------------------------------------------------------------------


def with_series_number(queryset: QuerySet[InfusionSession]) -> QuerySet[InfusionSession]:
    """Annotate ``series_number``: the infusion's place among its series' booked or given
    infusions (1 = first). NULL for boosters. One subquery, whatever the row count."""
    booked_up_to = (
        InfusionSession.objects.filter(
            series=OuterRef("series"), status__in=OCCUPYING_STATUSES, scheduled_at__lte=OuterRef("scheduled_at")
        )
        .order_by()
        .values("series")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return queryset.annotate(series_number=Subquery(booked_up_to, output_field=IntegerField()))


def with_last_phq9(queryset: QuerySet[InfusionSession]) -> QuerySet[InfusionSession]:
    """Annotate the patient's latest PHQ-9 total (0-27) and when it was taken."""
    latest = PHQ9Assessment.objects.filter(patient=OuterRef("patient")).order_by("-taken_at")
    return queryset.annotate(
        last_phq9_total=Subquery(latest.values("total")[:1]),
        last_phq9_taken_at=Subquery(latest.values("taken_at")[:1]),
    )


def _decorate(session: InfusionSession) -> InfusionSession:
    """Presentation attributes derived from the annotations (no queries)."""
    number = getattr(session, "series_number", None)
    if session.status not in OCCUPYING_STATUSES:
        number = None  # a missed or cancelled infusion holds no place in the series
    session.series_number = number
    session.is_early = bool(number and number <= EARLY_INFUSIONS and session.kind == SessionKind.INDUCTION)
    session.not_started = session.status == SessionStatus.SCHEDULED and session.started_at is None
    total = getattr(session, "last_phq9_total", None)
    session.last_phq9_band = severity_for_total(total) if total is not None else None
    return session


def _parse_day(value: str | None) -> dt.date:
    """A day from the query string; anything unreadable or implausible means today."""
    if value:
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            if is_plausible_day(day):
                return day
    return timezone.localdate()


def _safe_next(request: HttpRequest) -> str | None:
    """The ``next`` address, if it stays on this site (never an open redirect)."""
    url = request.POST.get("next") or request.GET.get("next")
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return None


def _week_url(day: dt.date) -> str:
    monday = day - dt.timedelta(days=day.weekday())
    return f"{reverse('infusions:week')}?week={monday.isoformat()}"


def _warn_gaps(request: HttpRequest, gaps) -> None:
    if gaps:
        messages.warning(
            request,
            "This series has a gap longer than the clinic's maximum: " + "; ".join(str(gap) for gap in gaps) + ".",
        )


def _series_has_room(series: InductionSeries) -> bool:
    """Can a make-up infusion be booked (in progress, fewer booked than planned)?"""
    series = InductionSeries.objects.with_progress().get(pk=series.pk)
    booked = series.sessions.filter(status__in=OCCUPYING_STATUSES).count()
    return series.is_in_progress and booked < series.planned_infusions


def _when(session: InfusionSession) -> str:
    return f"{timezone.localtime(session.scheduled_at):%a %d %b %Y at %H:%M}"


# --- The clinician's day ------------------------------------------------------------


@clinician_required
@require_http_methods(["GET"])
def today(request: HttpRequest) -> HttpResponse:
    day = _parse_day(request.GET.get("date"))
    sessions = [
        _decorate(session)
        for session in with_last_phq9(with_series_number(InfusionSession.objects.filter(scheduled_on=day)))
        .select_related("patient", "series")
        .order_by("scheduled_at", "patient__last_name")
    ]
    scheduled = [s for s in sessions if s.not_started]
    in_progress = [s for s in sessions if s.status == SessionStatus.SCHEDULED and s.started_at is not None]
    finished = [s for s in sessions if s.status != SessionStatus.SCHEDULED]
    return render(
        request,
        "sessions/today.html",
        {
            "nav": "today",
            "day": day,
            "is_today": day == timezone.localdate(),
            "previous_day": day - dt.timedelta(days=1),
            "next_day": day + dt.timedelta(days=1),
            "groups": [
                ("scheduled", "Scheduled", "Not started yet.", "Nothing waiting to start.", scheduled),
                ("in-progress", "In progress", "Started, not completed.", "No infusion under way.", in_progress),
                ("finished", "Finished", "Completed, missed or cancelled.", "Nothing finished yet.", finished),
            ],
            "count": len(sessions),
        },
    )


# --- Starting a series ----------------------------------------------------------------


@staff_required
@require_http_methods(["GET", "POST"])
def series_new(request: HttpRequest, pk) -> HttpResponse:
    """Preview the dates (nothing saved), then book exactly what was previewed."""
    patient = get_object_or_404(Patient, pk=pk)
    plan = signature = None
    status = 200
    if request.method == "POST":
        form = SeriesForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.series_check(patient=patient, protocol=data["protocol"], start_date=data["start_date"])
                plan = services.series_plan(patient=patient, protocol=data["protocol"], start_date=data["start_date"])
                # The signature covers the inputs and the dates shown: confirm books exactly those.
                dates = ",".join(f"{day:%Y-%m-%d}" for day in plan.dates)
                signature = f"{data['protocol'].pk}|{data['appointment_time']:%H:%M}|{dates}"
                if "confirm" in request.POST and request.POST.get("previewed") == signature:
                    series = services.series_create(
                        patient=patient,
                        protocol=data["protocol"],
                        start_date=data["start_date"],
                        appointment_time=data["appointment_time"],
                        created_by=request.user,
                        expected_dates=plan.dates,
                    )
                    messages.success(
                        request,
                        f"Induction series booked for {patient.full_name}: {series.planned_infusions} infusions "
                        f"from {series.start_date:%a %d %b %Y}.",
                    )
                    _warn_gaps(request, services.series_gap_report(series))
                    return redirect(patient.get_absolute_url())
                if "confirm" in request.POST:
                    # The form changed after the preview: show the dates it would book now.
                    messages.info(request, "The details changed since the preview; check these dates, then confirm.")
            except ValidationError as error:
                add_service_errors(form, error)
                plan = None
        if not form.is_valid():
            status = UNPROCESSABLE
    else:
        form = SeriesForm()
    return render(
        request,
        "sessions/series_new.html",
        {"patient": patient, "form": form, "plan": plan, "signature": signature, "nav": "patients"},
        status=status,
    )


# --- The infusion log ---------------------------------------------------------------


def _load_session(pk) -> InfusionSession:
    queryset = with_series_number(
        InfusionSession.objects.select_related("patient", "series", "administered_by", "discharged_by", "signed_by")
    )
    return _decorate(get_object_or_404(queryset, pk=pk))


def _display_value(field: str, value: Any) -> str:
    """An amendment's stored value (JSON) as a person reads it."""
    if value in (None, ""):
        return "(empty)"
    if field == "dissociation_scale":
        return DissociationScale(value).label
    if field in {"started_at", "ended_at", "discharged_at"}:
        return f"{timezone.localtime(dt.datetime.fromisoformat(value)):%d %b %Y %H:%M}"
    return str(value)


def _amendments(session: InfusionSession) -> list[dict]:
    rows = []
    for amendment in session.amendments.select_related("author"):
        changes = [
            {
                "field": InfusionSession._meta.get_field(field).verbose_name,
                "from": _display_value(field, change["from"]),
                "to": _display_value(field, change["to"]),
            }
            for field, change in amendment.changes.items()
        ]
        rows.append({"amendment": amendment, "changes": changes})
    return rows


def _dose_preview(session: InfusionSession, weight: Decimal | None) -> str:
    if not session.is_weight_based:
        return f"Fixed dose: {session.dose_mg} mg."
    if weight is None:
        return f"{session.dose_mg_per_kg} mg/kg: enter the weight to compute the dose."
    mg = weight_based_dose_mg(mg_per_kg=session.dose_mg_per_kg, weight_kg=weight)
    return f"{session.dose_mg_per_kg} mg/kg \u00d7 {weight} kg = {mg} mg"


def _default_phase(session: InfusionSession) -> str:
    if session.started_at is None:
        return VitalPhase.PRE
    if session.status == SessionStatus.COMPLETED:
        return VitalPhase.DISCHARGE
    return VitalPhase.DURING


def _render_detail(
    request: HttpRequest, session: InfusionSession, *, status: int = 200, preview_weight=None, **forms
) -> HttpResponse:
    patient = session.patient
    can_start = session.not_started and not session.is_signed
    readings = [
        {"reading": reading, "alerts": alerts, "level": _reading_level(alerts)}
        for reading in session.vitals.all()
        for alerts in [reading.alerts()]
    ]
    start_form = forms.get("start_form") or StartForm(
        weight_based=session.is_weight_based, initial={"weight_kg": patient.weight_kg}
    )
    if preview_weight is None:
        preview_weight = patient.weight_kg
    failed = next((form for form in forms.values() if form is not None and form.errors), None)
    in_progress = session.status == SessionStatus.SCHEDULED and session.started_at is not None
    can_discharge = session.status == SessionStatus.COMPLETED and session.discharged_at is None
    visible = {
        "start": can_start,
        "vitals": session.status in OCCUPYING_STATUSES and not session.is_signed,
        "effect": session.started_at is not None and not session.is_signed,
        "complete": in_progress,
        "discharge": can_discharge,
        "amend": session.is_signed,
    }
    context = {
        "nav": "today",
        "session": session,
        "patient": patient,
        "can_start": can_start,
        "in_progress": in_progress,
        "can_log": visible["vitals"],
        "can_side_effect": visible["effect"],
        "can_discharge": can_discharge,
        "can_sign": (
            session.status == SessionStatus.COMPLETED and session.discharged_at is not None and not session.is_signed
        ),
        "can_makeup": (
            session.kind == SessionKind.INDUCTION
            and session.status in (SessionStatus.MISSED, SessionStatus.CANCELLED)
            and _series_has_room(session.series)
        ),
        "readings": readings,
        "side_effects": session.side_effects.order_by("created_at"),
        "amendments": _amendments(session) if session.is_signed else [],
        "dose_preview": _dose_preview(session, preview_weight) if can_start else "",
        "start_form": start_form,
        "vitals_form": forms.get("vitals_form") or VitalsForm(initial={"phase": _default_phase(session)}),
        "side_effect_form": forms.get("side_effect_form") or SideEffectForm(),
        "complete_form": forms.get("complete_form") or CompleteForm(initial={"notes": session.notes}),
        "discharge_form": forms.get("discharge_form") or DischargeForm(),
        "amend_form": forms.get("amend_form") or (AmendForm(session=session) if session.is_signed else None),
        "failed": failed.id_prefix if failed else None,
        # A refused form whose section is no longer shown (say, the record was signed
        # meanwhile): its messages go at the top instead.
        "failed_hidden_errors": [] if failed is None or visible[failed.id_prefix] else _all_errors(failed),
        "thresholds": _thresholds(),
    }
    return render(request, "sessions/detail.html", context, status=status)


def _all_errors(form) -> list[str]:
    return [message for messages_ in form.errors.values() for message in messages_]


def _reading_level(alerts) -> str:
    levels = {alert.level for alert in alerts}
    return "alert" if "alert" in levels else "review" if "review" in levels else ""


def _thresholds() -> dict[str, Any]:
    return {
        "review_bp": f"{settings.CLINIC_VITALS_REVIEW_SYSTOLIC}/{settings.CLINIC_VITALS_REVIEW_DIASTOLIC}",
        "alert_bp": f"{settings.CLINIC_VITALS_ALERT_SYSTOLIC}/{settings.CLINIC_VITALS_ALERT_DIASTOLIC}",
        "heart_rate": settings.CLINIC_VITALS_ALERT_HEART_RATE,
        "spo2": settings.CLINIC_VITALS_ALERT_SPO2_BELOW,
    }


def _back_to_detail(session: InfusionSession) -> HttpResponse:
    return redirect("infusions:detail", pk=session.pk)


@clinician_required
@require_http_methods(["GET"])
def detail(request: HttpRequest, pk) -> HttpResponse:
    return _render_detail(request, _load_session(pk))


@clinician_required
@require_POST
def start(request: HttpRequest, pk) -> HttpResponse:
    session = _load_session(pk)
    form = StartForm(request.POST, weight_based=session.is_weight_based)
    if form.is_valid():
        try:
            if "preview" in request.POST:
                weight = parse_weight_kg(form.cleaned_data["weight_kg"]) if session.is_weight_based else None
                return _render_detail(request, session, start_form=form, preview_weight=weight)
            started = services.session_start(
                session=session,
                by=request.user,
                weight_kg=form.cleaned_data.get("weight_kg"),
                started_at=at_session_day(session, form.cleaned_data["started_at"]),
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            dose = f"{started.dose_mg} mg"
            if started.is_weight_based:
                dose += f" ({started.dose_mg_per_kg} mg/kg x {started.weight_kg_used} kg)"
            messages.success(
                request, f"Infusion started at {timezone.localtime(started.started_at):%H:%M}. Dose: {dose}."
            )
            return _back_to_detail(session)
    return _render_detail(request, session, status=UNPROCESSABLE, start_form=form)


@clinician_required
@require_POST
def vitals(request: HttpRequest, pk) -> HttpResponse:
    session = _load_session(pk)
    form = VitalsForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            reading = services.session_record_vitals(
                session=session,
                by=request.user,
                phase=data["phase"],
                taken_at=at_session_day(session, data["taken_at"]),
                systolic=data["systolic"],
                diastolic=data["diastolic"],
                heart_rate=data["heart_rate"],
                spo2=data["spo2"],
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            at = f"{timezone.localtime(reading.taken_at):%H:%M}"
            alerts = reading.alerts()
            raised = [alert.message for alert in alerts if alert.level == "alert"]
            review = [alert.message for alert in alerts if alert.level == "review"]
            if raised:
                messages.error(
                    request,
                    f"Alert raised: {'; '.join(raised)} (reading at {at}). The patient's clinician has been notified.",
                )
            if review:
                messages.warning(request, f"Review before starting: {'; '.join(review)} (reading at {at}).")
            if not alerts:
                messages.success(request, f"Reading at {at} recorded.")
            return _back_to_detail(session)
    return _render_detail(request, session, status=UNPROCESSABLE, vitals_form=form)


@clinician_required
@require_POST
def side_effect(request: HttpRequest, pk) -> HttpResponse:
    session = _load_session(pk)
    form = SideEffectForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        if session.side_effects.filter(kind=data["kind"]).exists():
            # The database refuses the duplicate too; this says so next to the field.
            form.add_error("kind", "This side effect is already recorded for this infusion.")
        else:
            try:
                effect = services.session_record_side_effect(
                    session=session, by=request.user, kind=data["kind"], severity=data["severity"], note=data["note"]
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(request, f"Side effect recorded: {effect}.")
                return _back_to_detail(session)
    return _render_detail(request, session, status=UNPROCESSABLE, side_effect_form=form)


@clinician_required
@require_POST
def complete(request: HttpRequest, pk) -> HttpResponse:
    session = _load_session(pk)
    form = CompleteForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            done = services.session_complete(
                session=session,
                by=request.user,
                ended_at=at_session_day(session, data["ended_at"]),
                dissociation_scale=data["dissociation_scale"],
                dissociation_score=data["dissociation_score"],
                notes=data["notes"],
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Infusion completed at {timezone.localtime(done.ended_at):%H:%M}.")
            return _back_to_detail(session)
    return _render_detail(request, session, status=UNPROCESSABLE, complete_form=form)


@clinician_required
@require_POST
def discharge(request: HttpRequest, pk) -> HttpResponse:
    session = _load_session(pk)
    form = DischargeForm(request.POST)
    if form.is_valid():
        try:
            done = services.session_discharge(
                session=session,
                by=request.user,
                discharged_at=at_session_day(session, form.cleaned_data["discharged_at"]),
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Patient discharged at {timezone.localtime(done.discharged_at):%H:%M}.")
            return _back_to_detail(session)
    return _render_detail(request, session, status=UNPROCESSABLE, discharge_form=form)


@clinician_required
@require_POST
def sign(request: HttpRequest, pk) -> HttpResponse:
    session = _load_session(pk)
    try:
        services.session_sign(session=session, by=request.user)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return _render_detail(request, session, status=UNPROCESSABLE)
    messages.success(request, "Record signed and locked. Corrections are now amendments.")
    return _back_to_detail(session)


@clinician_required
@require_POST
def amend(request: HttpRequest, pk) -> HttpResponse:
    session = _load_session(pk)
    form = AmendForm(request.POST, session=session)
    if not session.is_signed:
        form.add_error(None, "Only a signed record is amended; this one can still be edited.")
    elif form.is_valid():
        try:
            services.session_amend(
                session=session, by=request.user, reason=form.cleaned_data["reason"], changes=form.changes()
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, "Amendment recorded; the original values stay in the record.")
            return _back_to_detail(session)
    return _render_detail(request, session, status=UNPROCESSABLE, amend_form=form)


# --- Appointments: move, cancel, make-up --------------------------------------------------


def _appointment(pk) -> InfusionSession:
    return _decorate(
        get_object_or_404(with_series_number(InfusionSession.objects.select_related("patient", "series")), pk=pk)
    )


@staff_required
@require_http_methods(["GET", "POST"])
def move(request: HttpRequest, pk) -> HttpResponse:
    session = _appointment(pk)
    next_url = _safe_next(request)
    status = 200
    if request.method == "POST":
        form = AppointmentForm(request.POST)
        if form.is_valid():
            try:
                gaps = services.session_reschedule(session=session, scheduled_at=form.scheduled_at(), by=request.user)
            except ValidationError as error:
                add_service_errors(form, error, form.SERVICE_ALIASES)
            else:
                session.refresh_from_db()
                messages.success(request, f"{session.patient.full_name}'s infusion moved to {_when(session)}.")
                _warn_gaps(request, gaps)
                return redirect(next_url or _week_url(session.scheduled_on))
        status = UNPROCESSABLE
    else:
        local = timezone.localtime(session.scheduled_at)
        form = AppointmentForm(initial={"date": session.scheduled_on, "time": local.time()})
    return render(
        request,
        "sessions/move.html",
        {
            "session": session,
            "form": form,
            "next_url": next_url,
            "back_url": next_url or _week_url(session.scheduled_on),
            "nav": "calendar",
        },
        status=status,
    )


@staff_required
@require_http_methods(["GET", "POST"])
def cancel(request: HttpRequest, pk) -> HttpResponse:
    session = _appointment(pk)
    next_url = _safe_next(request)
    status = 200
    if request.method == "POST":
        form = CloseForm(request.POST)
        if form.is_valid():
            close = (
                services.session_mark_missed
                if form.cleaned_data["outcome"] == SessionStatus.MISSED
                else services.session_cancel
            )
            try:
                closed = close(session=session, by=request.user, reason=form.cleaned_data["reason"])
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(
                    request,
                    f"{session.patient.full_name}'s infusion on {_when(session)} marked "
                    f"{closed.get_status_display().lower()}.",
                )
                if closed.series_id and _series_has_room(closed.series):
                    # The series still needs this infusion: offer the make-up straight away.
                    makeup_url = reverse("infusions:makeup", kwargs={"pk": closed.series_id})
                    if next_url:
                        makeup_url += "?" + urlencode({"next": next_url})
                    return redirect(makeup_url)
                return redirect(next_url or _week_url(session.scheduled_on))
        status = UNPROCESSABLE
    else:
        form = CloseForm()
    return render(
        request,
        "sessions/cancel.html",
        {
            "session": session,
            "form": form,
            "next_url": next_url,
            "back_url": next_url or _week_url(session.scheduled_on),
            "nav": "calendar",
        },
        status=status,
    )


#: How many days from tomorrow a make-up day is looked for.
MAKEUP_SEARCH_DAYS = 21


def _suggest_makeup_day(series: InductionSeries) -> dt.date | None:
    """The first day from tomorrow the rules allow (open, not on or next to another
    infusion): what ``services.check_infusion_day`` accepts, read in two queries for the
    whole window rather than two a day (the patient's bookings would make it grow)."""
    today = timezone.localdate()
    first, last = today + dt.timedelta(days=1), today + dt.timedelta(days=MAKEUP_SEARCH_DAYS)
    closed = closed_dates_between(first, last)
    busy = set(
        series.patient.infusion_sessions.filter(
            status__in=OCCUPYING_STATUSES,
            scheduled_on__range=(first - dt.timedelta(days=1), last + dt.timedelta(days=1)),
        ).values_list("scheduled_on", flat=True)
    )
    one_day = dt.timedelta(days=1)
    for offset in range(1, MAKEUP_SEARCH_DAYS + 1):
        day = today + dt.timedelta(days=offset)
        if is_open_day(day, closed) and not busy & {day - one_day, day, day + one_day}:
            return day
    return None


@staff_required
@require_http_methods(["GET", "POST"])
def makeup(request: HttpRequest, pk) -> HttpResponse:
    series = get_object_or_404(InductionSeries.objects.select_related("patient", "protocol"), pk=pk)
    next_url = _safe_next(request)
    has_room = _series_has_room(series)
    status = 200
    if request.method == "POST":
        form = AppointmentForm(request.POST)
        if form.is_valid():
            try:
                session = services.series_schedule_makeup(
                    series=series, scheduled_at=form.scheduled_at(), by=request.user
                )
            except ValidationError as error:
                add_service_errors(form, error, form.SERVICE_ALIASES)
            else:
                messages.success(
                    request, f"Make-up infusion booked for {series.patient.full_name} on {_when(session)}."
                )
                _warn_gaps(request, services.series_gap_report(series))
                return redirect(next_url or _week_url(session.scheduled_on))
        status = UNPROCESSABLE
    else:
        form = AppointmentForm(
            initial={
                "date": _suggest_makeup_day(series) if has_room else None,
                "time": default_appointment_time(),
            }
        )
    sessions = [_decorate(s) for s in with_series_number(series.sessions.all()).order_by("scheduled_at")]
    return render(
        request,
        "sessions/makeup.html",
        {
            "series": series,
            "patient": series.patient,
            "sessions": sessions,
            "has_room": has_room,
            "booked": sum(1 for s in sessions if s.status in OCCUPYING_STATUSES),
            "form": form,
            "next_url": next_url,
            "back_url": next_url or series.patient.get_absolute_url(),
            "nav": "calendar",
        },
        status=status,
    )


# --- The week calendar ---------------------------------------------------------------------


@staff_required
@require_http_methods(["GET"])
def week(request: HttpRequest) -> HttpResponse:
    day = _parse_day(request.GET.get("week"))
    monday = day - dt.timedelta(days=day.weekday())
    sunday = monday + dt.timedelta(days=6)
    today_ = timezone.localdate()
    closed = closed_dates_between(monday, sunday)
    sessions = (
        with_series_number(InfusionSession.objects.filter(scheduled_on__range=(monday, sunday)))
        .filter(status__in=OCCUPYING_STATUSES)
        .select_related("patient", "series")
        .order_by("scheduled_at", "patient__last_name")
    )
    by_day: dict[dt.date, list[InfusionSession]] = {}
    for session in sessions:
        by_day.setdefault(session.scheduled_on, []).append(_decorate(session))
    here = _week_url(monday)
    days = [
        {
            "date": date,
            "is_open": is_open_day(date, closed),
            "is_today": date == today_,
            "sessions": by_day.get(date, []),
        }
        for date in (monday + dt.timedelta(days=n) for n in range(7))
    ]
    return render(
        request,
        "sessions/week.html",
        {
            "nav": "calendar",
            "monday": monday,
            "sunday": sunday,
            "days": days,
            "previous_week": monday - dt.timedelta(days=7),
            "next_week": monday + dt.timedelta(days=7),
            "is_this_week": monday <= today_ <= sunday,
            "next_query": urlencode({"next": here}),
            "count": sum(len(d["sessions"]) for d in days),
        },
    )


@require_POST
@staff_required
def series_discontinue(request: HttpRequest, pk) -> HttpResponse:
    """Stop a series early (the remaining booked infusions are cancelled)."""
    series = get_object_or_404(InductionSeries.objects.select_related("patient"), pk=pk)
    try:
        services.series_discontinue(series=series, by=request.user, reason=request.POST.get("reason", ""))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "The series is stopped; its remaining infusions are cancelled.")
    return redirect(series.patient.get_absolute_url())


@staff_required
@require_http_methods(["GET"])
def outcomes(request: HttpRequest) -> HttpResponse:
    """The clinic's outcomes across induction series, filtered by a GET form: the mean PHQ-9
    curve, response and remission after the series, time to the first booster.

    Aggregates only (no patient is named). ``?download=response_curve`` or
    ``?download=time_to_booster`` returns that chart's table as CSV, with the same filters.
    """
    # Imported here: this view is appended to a module another change is editing.
    from django.http import Http404

    from clinic.charts import Chart, csv_response
    from sessions import charts
    from sessions import outcomes as aggregate
    from sessions.forms import OutcomesFilterForm

    form = OutcomesFilterForm(request.GET)
    context: dict[str, Any] = {"nav": "outcomes", "form": form, "filtered": any(form.data.get(f) for f in form.fields)}
    if not form.is_valid():
        return render(request, "sessions/outcomes.html", context, status=UNPROCESSABLE)
    filters = form.filters()
    download = request.GET.get("download")
    stamp = f"{timezone.localdate():%Y-%m-%d}"
    if download == "response_curve":
        headers, rows = charts.response_curve_table(aggregate.response_curve(filters))
        return csv_response(f"outcomes-response-curve-{stamp}.csv", headers, rows)
    if download == "time_to_booster":
        headers, rows = charts.time_to_booster_table(aggregate.days_to_first_booster(filters))
        return csv_response(f"outcomes-time-to-booster-{stamp}.csv", headers, rows)
    if download:
        raise Http404("There is no such download.")

    query = request.GET.copy()
    query.pop("download", None)

    def csv_url(name: str) -> str:
        query["download"] = name
        return f"{reverse('infusions:outcomes')}?{query.urlencode()}"

    outcomes = aggregate.clinic_outcomes(filters)
    points, series, days = outcomes.curve, outcomes.series, outcomes.days_to_booster
    curve_headers, curve_rows = charts.response_curve_table(points)
    booster_headers, booster_rows = charts.time_to_booster_table(days)
    context.update(
        {
            "series": series,
            "after_days": aggregate.after_series_days(),
            "baseline_days": settings.CLINIC_BASELINE_WINDOW_DAYS,
            "curve": Chart(
                id="response-curve",
                title="Mean PHQ-9 across the induction series",
                figure=charts.clinic_response_curve(points),
                summary=charts.response_curve_summary(points),
                headers=curve_headers,
                rows=curve_rows,
                csv_url=csv_url("response_curve"),
            ),
            "booster": Chart(
                id="time-to-booster",
                title="Time from the end of induction to the first booster",
                figure=charts.time_to_first_booster(days),
                summary=charts.time_to_booster_summary(days, series.complete),
                headers=booster_headers,
                rows=booster_rows,
                csv_url=csv_url("time_to_booster"),
            ),
        }
    )
    return render(request, "sessions/outcomes.html", context)
