"""Reading the audit trail: a patient's or a user's changes, with before and after."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model, QuerySet

# Event model (audit app) -> the path from an event row to its patient's id.
EVENT_PATIENT_PATHS: dict[str, str | None] = {
    "PatientEvent": "pgh_obj_id",
    "PHQ9AssessmentEvent": "patient_id",
    "InductionSeriesEvent": "patient_id",
    "InfusionSessionEvent": "patient_id",
    "VitalSignReadingEvent": "session__patient_id",
    "SideEffectEvent": "session__patient_id",
    "InfusionAmendmentEvent": "session__patient_id",
    "MaintenancePlanEvent": "patient_id",
    "ProtocolEvent": None,  # the clinic's protocols belong to no patient
}

#: Changes shown on one page of the audit search, newest first.
CHANGES_SHOWN = 300
_NOT_COMPARED = {"created_at", "updated_at"}


def history_is_kept() -> bool:
    """Change history needs PostgreSQL's triggers (the embedded SQLite has none)."""
    return connection.vendor == "postgresql"


@dataclass
class Change:
    """One event: who changed which record, when and from where, and each field's
    value before and after."""

    at: dt.datetime
    label: str  # insert, update or delete
    record: str  # the record's kind ("infusion session")
    object_id: Any
    user_id: int | None
    ip: str
    url: str
    fields: list[tuple[str, Any, Any]] = field(default_factory=list)
    username: str = ""
    #: what made a change outside a request (a management command such as seed_demo)
    command: str = ""


def event_models() -> list[type[Model]]:
    return [apps.get_model("audit", name) for name in EVENT_PATIENT_PATHS]


def _events(model: type[Model], *, patient_id=None, user_id=None, since=None, until=None) -> QuerySet | None:
    queryset = model.objects.select_related("pgh_context")
    if patient_id is not None:
        path = EVENT_PATIENT_PATHS[model.__name__]
        if path is None:
            return None
        queryset = queryset.filter(**{path: patient_id})
    if user_id is not None:
        queryset = queryset.filter(pgh_context__metadata__user=user_id)
    if since is not None:
        queryset = queryset.filter(pgh_created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(pgh_created_at__lt=until)
    return queryset.order_by("-pgh_created_at", "-pgh_id")


def _compared_fields(model: type[Model]) -> list:
    tracked = model.pgh_tracked_model
    names = {f.name for f in tracked._meta.concrete_fields} - _NOT_COMPARED
    return [f for f in model._meta.concrete_fields if f.name in names and f.name != "id"]


def _value(event: Model, model_field) -> Any:
    value = getattr(event, model_field.attname)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if model_field.choices and value not in (None, ""):
        return dict(model_field.flatchoices).get(value, value)
    if _is_user(model_field) and value is not None:
        return UserRef(value)
    return value


def _is_user(model_field) -> bool:
    return model_field.is_relation and model_field.related_model is get_user_model()


@dataclass(frozen=True)
class UserRef:
    """A user named in a record (who administered, who signed): shown by login."""

    pk: int
    username: str = ""

    def __str__(self) -> str:
        return self.username or f"user #{self.pk}"


def changes(*, patient_id=None, user_id=None, since=None, until=None, limit: int = CHANGES_SHOWN) -> list[Change]:
    """The newest ``limit`` changes matching the filters, across every tracked record."""
    if not history_is_kept():
        return []
    picked: list[tuple[type[Model], Model]] = []
    for model in event_models():
        queryset = _events(model, patient_id=patient_id, user_id=user_id, since=since, until=until)
        if queryset is not None:
            picked.extend((model, event) for event in queryset[:limit])
    picked.sort(key=lambda pair: (pair[1].pgh_created_at, pair[1].pgh_id), reverse=True)
    picked = picked[:limit]

    # The snapshot before each update: the object's previous event.
    previous: dict[tuple[type[Model], int], Model] = {}
    by_model: dict[type[Model], set] = defaultdict(set)
    for model, event in picked:
        if event.pgh_label == "update":
            by_model[model].add(event.pgh_obj_id)
    for model, object_ids in by_model.items():
        history: dict[Any, list[Model]] = defaultdict(list)
        for event in model.objects.filter(pgh_obj_id__in=object_ids).order_by("pgh_id"):
            history[event.pgh_obj_id].append(event)
        for events in history.values():
            for before, after in itertools.pairwise(events):
                previous[(model, after.pgh_id)] = before

    result = []
    for model, event in picked:
        metadata = event.pgh_context.metadata if event.pgh_context_id else {}
        entry = Change(
            at=event.pgh_created_at,
            label=event.pgh_label,
            record=model.pgh_tracked_model._meta.verbose_name,
            object_id=event.pgh_obj_id,
            user_id=metadata.get("user"),
            ip=metadata.get("ip") or "",
            url=metadata.get("url") or "",
            command=metadata.get("command") or "",
        )
        before = previous.get((model, event.pgh_id))
        for model_field in _compared_fields(model):
            after_value = _value(event, model_field)
            if event.pgh_label == "update":
                before_value = _value(before, model_field) if before is not None else None
                if before is not None and before_value == after_value:
                    continue
                entry.fields.append((model_field.verbose_name, before_value, after_value))
            elif event.pgh_label == "insert":
                if after_value not in (None, ""):
                    entry.fields.append((model_field.verbose_name, None, after_value))
            else:  # delete: the last values the record had
                entry.fields.append((model_field.verbose_name, after_value, None))
        result.append(entry)

    user_ids = {c.user_id for c in result if c.user_id}
    user_ids |= {v.pk for c in result for _, *values in c.fields for v in values if isinstance(v, UserRef)}
    names = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    for entry in result:
        entry.username = names.get(entry.user_id, "") if entry.user_id else ""
        entry.fields = [
            (name, *(UserRef(v.pk, names.get(v.pk, "")) if isinstance(v, UserRef) else v for v in values))
            for name, *values in entry.fields
        ]
    return result
