"""The audit search: an auditor (or a superuser) reads who saw and who changed a
patient's record, or everything one user did."""

from __future__ import annotations

import datetime as dt
import uuid

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit import access as audit_access
from audit import trail
from audit.models import AccessLog, Channel, Outcome
from clinic.decorators import role_required
from patients import access
from patients.models import Patient

auditor_required = role_required(access.is_auditor)

#: Reads shown per page.
READS_PER_PAGE = 50
#: Patients offered when a search matches several.
MATCHES_SHOWN = 20


class AuditFilter(django_filters.FilterSet):
    """The search form. ``patient`` takes a record number, a name or the patient's id;
    ``user`` a login."""

    patient = django_filters.CharFilter(label="Patient", method="filter_nothing", help_text="Record number or name")
    user = django_filters.CharFilter(label="User", method="filter_nothing", help_text="Login")
    since = django_filters.DateFilter(
        label="From", method="filter_nothing", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = django_filters.DateFilter(
        label="To", method="filter_nothing", widget=forms.DateInput(attrs={"type": "date"})
    )
    outcome = django_filters.ChoiceFilter(
        field_name="outcome", choices=Outcome.choices, label="Reads", empty_label="All"
    )
    channel = django_filters.ChoiceFilter(
        field_name="channel", choices=Channel.choices, label="Through", empty_label="Any"
    )

    class Meta:
        model = AccessLog
        fields: list[str] = []  # the declared filters above, in that order

    def filter_nothing(self, queryset, name, value):
        # Patient, user and dates are resolved by the view (they filter changes too).
        return queryset


def _day_bounds(day: dt.date | None, *, end: bool = False) -> dt.datetime | None:
    if day is None:
        return None
    if end:
        day += dt.timedelta(days=1)
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _find_patients(term: str):
    """Patients matching a search: an id or a record number exactly, else names."""
    term = term.strip()
    try:
        return Patient.objects.filter(pk=uuid.UUID(term))
    except ValueError:
        pass
    exact = Patient.objects.filter(mrn__iexact=term)
    if exact.exists():
        return exact
    query = Q()
    for word in term.split():
        query &= Q(first_name__icontains=word) | Q(last_name__icontains=word)
    return Patient.objects.filter(query).order_by("last_name", "first_name")


@require_GET
@auditor_required
def search(request):
    filters = AuditFilter(request.GET or None, queryset=AccessLog.objects.all())
    context = {"filters": filters, "history_is_kept": trail.history_is_kept(), "nav": "audit"}
    if not request.GET or not filters.is_valid():
        return render(request, "audit/search.html", context)

    data = filters.form.cleaned_data
    patient = subject = None
    if data.get("patient"):
        matches = list(_find_patients(data["patient"])[: MATCHES_SHOWN + 1])
        if len(matches) != 1:
            context["matches"] = matches[:MATCHES_SHOWN]
            context["more_matches"] = len(matches) > MATCHES_SHOWN
            return render(request, "audit/search.html", context)
        patient = matches[0]
        # The page shows this patient's record (contact details and notes in the changes):
        # the auditor's own read is logged with the patient, as any other read is.
        setattr(request, audit_access.PATIENT_MARK, patient.pk)
    if data.get("user"):
        subject = get_user_model().objects.filter(username=data["user"].strip()).first()
        if subject is None:
            context["unknown_user"] = data["user"]
            return render(request, "audit/search.html", context)

    since = _day_bounds(data.get("since"))
    until = _day_bounds(data.get("until"), end=True)
    reads = filters.qs
    if patient is not None:
        reads = reads.filter(patient=patient)
    if subject is not None:
        reads = reads.filter(user_id=subject.pk)
    if since is not None:
        reads = reads.filter(at__gte=since)
    if until is not None:
        reads = reads.filter(at__lt=until)

    page = Paginator(reads.order_by("-at", "-id"), READS_PER_PAGE).get_page(request.GET.get("page"))
    names = dict(Patient.objects.filter(pk__in={r.patient_id for r in page if r.patient_id}).values_list("pk", "mrn"))
    for entry in page:
        entry.patient_mrn = names.get(entry.patient_id, "")
    context |= {
        "patient": patient,
        "subject": subject,
        "reads": page,
        "changes": trail.changes(
            patient_id=patient.pk if patient else None,
            user_id=subject.pk if subject else None,
            since=since,
            until=until,
        ),
        "changes_shown": trail.CHANGES_SHOWN,
        "query_without_page": request.GET.copy(),
    }
    context["query_without_page"].pop("page", None)
    return render(request, "audit/search.html", context)
