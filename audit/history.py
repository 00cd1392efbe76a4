"""Change history of the clinical records, kept by PostgreSQL triggers (django-pghistory).

Every insert, update and delete of a tracked table writes a snapshot row into its event
table in the same transaction, whatever wrote it: a page, the API, the admin, a Celery
task, a bulk update or plain SQL. The snapshot after each change, next to the one before
it, gives what changed (before and after). The request's context (user, path, client
address) is attached by audit.middleware.HistoryContextMiddleware.

The event tables live in this app and are append-only: hand-written triggers refuse
UPDATE, DELETE and TRUNCATE (audit/migrations/0005_database_guards.py; not pgtrigger's
own, which a session can switch off with one ``set_config``). On SQLite (the embedded ``make run`` default) there are no
triggers, so no change history is kept: the audit page says so.
"""

from __future__ import annotations

import pghistory

from maintenance.models import MaintenancePlan
from patients.models import Patient, PHQ9Assessment
from sessions.models import (
    InductionSeries,
    InfusionAmendment,
    InfusionSession,
    Protocol,
    SideEffect,
    VitalSignReading,
)


def trackers() -> tuple[pghistory.RowEvent, ...]:
    """Fresh trackers for each model: a tracker keeps the fields of the model it was set up on."""
    return (pghistory.InsertEvent(), pghistory.UpdateEvent(), pghistory.DeleteEvent())


# ``updated_at`` changes on every save and says nothing the event's own time does not.
NOT_SNAPSHOT = ["updated_at"]

# Tracked model -> its event model's name. The event models are created here, in the
# audit app, so the trail's tables sit together and migrate with it.
TRACKED = {
    Patient: "PatientEvent",
    PHQ9Assessment: "PHQ9AssessmentEvent",
    InductionSeries: "InductionSeriesEvent",
    InfusionSession: "InfusionSessionEvent",
    VitalSignReading: "VitalSignReadingEvent",
    SideEffect: "SideEffectEvent",
    InfusionAmendment: "InfusionAmendmentEvent",
    MaintenancePlan: "MaintenancePlanEvent",
    Protocol: "ProtocolEvent",
}

for _model, _name in TRACKED.items():
    pghistory.track(*trackers(), exclude=NOT_SNAPSHOT, model_name=_name, app_label="audit")(_model)
