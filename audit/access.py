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
from django.urls import Resolver404, ResolverMatch, resolve

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


# Query parameters of API lists that narrow them to one record: parameter -> its model.
PATIENT_FILTER = "patient"
API_FILTERS: dict[str, str] = {
    PATIENT_FILTER: "patients.patient",
    "series": "infusions.inductionseries",
}

#: Set on a request by code that stops it before (or instead of) its view, such as the
#: two-factor gate: the request is logged as refused whatever its status.
REFUSED_MARK = "audit_refused"
#: Set on a request by code that signs its user out before the response (the two-factor
#: gate): the log still names who asked.
USER_MARK = "audit_user"
#: Set on a request by a view that shows one patient's data under a URL that does not
#: name them (the audit search): the log names that patient.
PATIENT_MARK = "audit_patient_id"
#: Set on a request by an API list narrowed by ``?patient=`` whose rows carry that
#: patient (``patient_seen``): the patient's id and login, so the log need not look them up.
SEEN_MARK = "audit_patient_seen"


@dataclass(frozen=True)
class Address:
    """What a request's URL names: the record (model and id) and the channel."""

    channel: str
    model: str | None = None
    object_id: str = ""
    own_record: bool = False  # the portal: the signed-in patient's own record


def _resolve(request: HttpRequest) -> ResolverMatch | None:
    """The URL's match; resolved here when a middleware answered before the view's turn."""
    if request.resolver_match is not None:
        return request.resolver_match
    try:
        return resolve(request.path_info)
    except Resolver404:
        return None


def address_of(request: HttpRequest) -> Address | None:
    match = _resolve(request)
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
        if "pk" in kwargs:
            return Address(
                channel=Channel.API,
                model=API_RESOURCES.get(initkwargs.get("basename", "")),
                object_id=str(kwargs["pk"]),
            )
        if request.method == "GET":  # a list narrowed to one patient's records
            for parameter, model in API_FILTERS.items():
                if request.GET.get(parameter):
                    return Address(channel=Channel.API, model=model, object_id=request.GET[parameter])
        return Address(channel=Channel.API)
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


#: A patient's login the view did not read (see ``patient_seen``).
LOGIN_NOT_READ = object()


@dataclass(frozen=True)
class Seen:
    """A patient the view read for the id its request names (``patient_seen``)."""

    model: str
    object_id: str
    patient_id: uuid.UUID
    patient_user_id: object  # int | None, or LOGIN_NOT_READ


def patient_seen(
    request: HttpRequest, object_id: str, *, patient_id: uuid.UUID, patient_user_id=LOGIN_NOT_READ
) -> None:
    """Tell the log that the view read rows of patient ``patient_id`` for the id
    ``object_id`` that the request names (an API list's ``?patient=``, exactly as sent),
    and the patient's login if it read that too: the patient exists, and the log names
    them without looking them up again (``record``).

    The log still decides for itself whether the caller may see that patient. Staff see
    every patient; anyone else only a patient whose login is theirs, so without the login
    (LOGIN_NOT_READ) the log looks the patient up as before for a caller who is not staff.
    """
    setattr(request, SEEN_MARK, Seen("patients.patient", object_id, patient_id, patient_user_id))


def _seen(request: HttpRequest, address: Address, user) -> tuple[bool, uuid.UUID | None, int | None] | None:
    """What the view told of the record the request names (exists, patient, login), or
    None if it did not tell enough: then ``patient_of`` looks it up."""
    seen = getattr(request, SEEN_MARK, None)
    if not isinstance(seen, Seen) or (seen.model, seen.object_id) != (address.model, address.object_id):
        return None
    if seen.patient_user_id is LOGIN_NOT_READ:
        if not access.is_staff_member(user):
            return None
        return True, seen.patient_id, None  # staff: the login decides nothing (see record)
    return True, seen.patient_id, seen.patient_user_id


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
    user = getattr(request, USER_MARK, None) or getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    address = address_of(request)
    if address is None:
        return None
    exists, patient_id, patient_user_id = False, None, None
    if address.model and address.object_id:
        exists, patient_id, patient_user_id = _seen(request, address, user) or patient_of(
            address.model, address.object_id
        )
    elif address.own_record:
        from patients.models import Patient

        patient_id = Patient.objects.filter(user_id=user.pk).values_list("id", flat=True).first()
        patient_user_id, exists = user.pk, patient_id is not None
    elif getattr(request, PATIENT_MARK, None) is not None:
        patient_id, exists = getattr(request, PATIENT_MARK), True
    if address.channel == Channel.ADMIN:
        from django.contrib import admin

        # The admin is the superusers': anyone else was turned away, whatever the status.
        may_view = admin.site.has_permission(request)
    else:
        may_view = patient_id is None or access.is_staff_member(user) or patient_user_id == user.pk
    if getattr(request, PATIENT_MARK, None) is not None:
        may_view = True  # the view itself chose to show this patient
    outcome = outcome_of(response.status_code, exists=exists, may_view=may_view)
    if getattr(request, REFUSED_MARK, False):
        outcome = Outcome.REFUSED
    match = _resolve(request)
    entry = AccessLog(
        user_id=user.pk,
        username=user.get_username(),
        patient_id=patient_id,
        channel=address.channel,
        method=request.method[:8],
        path=request.path[:300],
        view=(match.view_name if match else "")[:100],
        object_id=address.object_id[:64] if address.model else "",
        status_code=response.status_code,
        outcome=outcome,
        ip_address=get_client_ip_address(request),
    )
    # Written after the view's transaction (ATOMIC_REQUESTS) has committed or rolled back,
    # so a refused or failed request keeps its row.
    entry.save(force_insert=True)
    return entry
