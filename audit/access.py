"""Which patient's record a request addresses, and the access-log row that records it.

Pages, API endpoints and admin views name records by opaque ids in their URLs; this module
knows, for each URL, which model the id belongs to and how to reach its patient. A URL
that names a record and is missing here is caught by tests/test_audit_access.py, which
walks every URL the project serves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from axes.helpers import get_client_ip_address
from django.apps import apps
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

from audit.models import AccessLog, Channel, Outcome
from patients import access

# Model label -> the path from one of its rows to its patient's id.
PATIENT_PATHS: dict[str, str] = {
    "patients.patient": "id",
    "patients.phq9assessment": "patient_id",
    "infusions.inductionseries": "patient_id",
    "infusions.infusionsession": "patient_id",
    "maintenance.boosterappointment": "patient_id",
    "infusions.vitalsignreading": "session__patient_id",
    "infusions.sideeffect": "session__patient_id",
    "infusions.infusionamendment": "session__patient_id",
    "maintenance.maintenanceplan": "patient_id",
    "maintenance.reminder": "patient_id",
    "maintenance.notification": "patient_id",
}

# Pages whose URL names a record: URL name -> the record's model label.
PAGES: dict[str, str] = {
    "patients:detail": "patients.patient",
    "patients:edit": "patients.patient",
    "patients:invite": "patients.patient",
    "patients:phq9_new": "patients.patient",
    "patients:phq9_acknowledge": "patients.phq9assessment",
    "infusions:series_new": "patients.patient",
    "infusions:makeup": "infusions.inductionseries",
    "infusions:series_discontinue": "infusions.inductionseries",
    "infusions:detail": "infusions.infusionsession",
    "infusions:start": "infusions.infusionsession",
    "infusions:vitals": "infusions.infusionsession",
    "infusions:side_effect": "infusions.infusionsession",
    "infusions:complete": "infusions.infusionsession",
    "infusions:discharge": "infusions.infusionsession",
    "infusions:sign": "infusions.infusionsession",
    "infusions:amend": "infusions.infusionsession",
    "infusions:move": "infusions.infusionsession",
    "infusions:cancel": "infusions.infusionsession",
    "maintenance:booster_new": "patients.patient",
    "maintenance:plan_edit": "patients.patient",
    "maintenance:notification_read": "maintenance.notification",
}

# API resources (the router's basenames) -> the model their ids name.
API_RESOURCES: dict[str, str | None] = {
    "patient": "patients.patient",
    "phq9": "patients.phq9assessment",
    "series": "infusions.inductionseries",
    "infusion": "infusions.infusionsession",
    "booster": "infusions.infusionsession",
    "maintenance-plan": "maintenance.maintenanceplan",
    "notification": "maintenance.notification",
    "protocol": None,  # protocols are the clinic's, not a patient's
}

# Requests that read nothing of a patient's and would only bury the rest.
NOT_LOGGED = frozenset({"health", "api:schema", "api:docs"})


@dataclass(frozen=True)
class Address:
    """What a request's URL names: the record (model and id) and the channel."""

    channel: str
    model: str | None = None
    object_id: str = ""
    patient_param: str = ""  # a ?patient= filter on an API list
    own_record: bool = False  # the portal: the signed-in patient's own record


def address_of(request: HttpRequest) -> Address | None:
    match = request.resolver_match
    if match is None:  # no URL matched (a 404 before any view)
        return Address(channel=Channel.API if request.path.startswith("/api/") else Channel.PAGE)
    name = match.view_name
    if name in NOT_LOGGED:
        return None
    kwargs = match.kwargs
    if match.namespace == "admin":
        return _admin_address(match.url_name or "", kwargs)
    if match.namespace == "api":
        initkwargs = getattr(match.func, "initkwargs", {})
        model = API_RESOURCES.get(initkwargs.get("basename", ""))
        return Address(
            channel=Channel.API,
            model=model,
            object_id=str(kwargs.get("pk", "")),
            patient_param=request.GET.get("patient", "") if request.method == "GET" else "",
        )
    if match.namespace == "portal":
        return Address(channel=Channel.PAGE, own_record=True)
    return Address(channel=Channel.PAGE, model=PAGES.get(name), object_id=str(kwargs.get("pk", "")))


def _admin_address(url_name: str, kwargs: dict) -> Address:
    """The admin's record views are named ``<app>_<model>_<view>`` with ``object_id``."""
    object_id = str(kwargs.get("object_id", ""))
    model = None
    if object_id:
        for label in PATIENT_PATHS:
            app_label, model_name = label.split(".")
            if url_name.startswith(f"{app_label}_{model_name}_"):
                model = label
                break
    return Address(channel=Channel.ADMIN, model=model, object_id=object_id)


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError):
        return None


def patient_of(model_label: str | None, object_id: str) -> tuple[bool, uuid.UUID | None, int | None]:
    """Whether the record exists, its patient's id, and that patient's login (user id)."""
    pk = _as_uuid(object_id)
    if model_label is None or pk is None:
        return False, None, None
    path = PATIENT_PATHS.get(model_label)
    model = apps.get_model(model_label)
    if path is None:
        return model._default_manager.filter(pk=pk).exists(), None, None
    user_path = "user_id" if path == "id" else path.removesuffix("_id") + "__user_id"
    try:
        row = model._default_manager.filter(pk=pk).values_list(path, user_path).first()
    except ValidationError:
        return False, None, None
    if row is None:
        return False, None, None
    return True, row[0], row[1]


def outcome_of(status: int, *, exists: bool, may_view: bool) -> str:
    if status >= 500:
        return Outcome.FAILED
    if not may_view:
        return Outcome.REFUSED
    if status in (401, 403, 429):
        return Outcome.REFUSED
    if status == 404:
        return Outcome.REFUSED if exists else Outcome.NOT_FOUND
    if status >= 400:
        return Outcome.FAILED
    return Outcome.ALLOWED


def record(request: HttpRequest, response: HttpResponse) -> AccessLog | None:
    """Write the access-log row for a signed-in user's request (None for other requests)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    address = address_of(request)
    if address is None:
        return None
    exists, patient_id, patient_user_id = False, None, None
    if address.model and address.object_id:
        exists, patient_id, patient_user_id = patient_of(address.model, address.object_id)
    elif address.patient_param:
        exists, patient_id, patient_user_id = patient_of("patients.patient", address.patient_param)
    elif address.own_record:
        from patients.models import Patient

        patient_id = Patient.objects.filter(user_id=user.pk).values_list("id", flat=True).first()
        patient_user_id, exists = user.pk, patient_id is not None
    may_view = patient_id is None or access.is_staff_member(user) or patient_user_id == user.pk
    entry = AccessLog(
        user_id=user.pk,
        username=user.get_username(),
        patient_id=patient_id,
        channel=address.channel,
        method=request.method[:8],
        path=request.path[:300],
        view=(request.resolver_match.view_name if request.resolver_match else "")[:100],
        object_id=(address.object_id or address.patient_param)[:64] if (address.model or address.patient_param) else "",
        status_code=response.status_code,
        outcome=outcome_of(response.status_code, exists=exists, may_view=may_view),
        ip_address=get_client_ip_address(request),
    )
    # Written after the view's transaction (ATOMIC_REQUESTS) has committed or rolled back,
    # so a refused or failed request keeps its row.
    entry.save(force_insert=True)
    return entry
