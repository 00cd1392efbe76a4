"""Every index says who uses it: a comment on the line above it names the page, list or
job whose query it serves (issue 8). An index nobody names is a write cost with no reader."""

from __future__ import annotations

import inspect
import re

from django.apps import apps

PROJECT_APPS = ("patients", "infusions", "maintenance", "audit", "clinic")


def test_every_index_of_the_project_has_a_comment_naming_its_user():
    unnamed, checked = [], 0
    for model in apps.get_models():
        if model._meta.app_label not in PROJECT_APPS or not model._meta.indexes:
            continue
        if model.__module__.endswith(".history") or model.__name__.endswith("Event"):
            continue  # pghistory's generated event models declare no indexes of ours
        lines = inspect.getsource(model).splitlines()
        for number, line in enumerate(lines):
            if re.search(r"\bmodels\.Index\(", line):
                checked += 1
                if not lines[number - 1].strip().startswith("#"):
                    unnamed.append(f"{model._meta.label}: {line.strip()}")
    assert checked >= 10
    assert not unnamed, "Indexes without a comment naming the query they serve:\n" + "\n".join(unnamed)


def test_the_project_declares_indexes_where_its_pages_and_jobs_read():
    declared = {index.name for model in apps.get_models() for index in model._meta.indexes}
    # The readers named in the models: patient list, PHQ-9 timeline and safety inbox,
    # series and infusion timelines, the day list, the booster scan, the reminder
    # dispatcher, the inbox, the audit search.
    assert {
        "patient_name_idx",
        "phq9_patient_taken_idx",
        "series_patient_start_idx",
        "session_patient_sched_idx",
        "session_day_idx",
        "session_completed_idx",
        "reminder_pending_idx",
        "notification_inbox_idx",
        "accesslog_patient_at",
        "accesslog_user_at",
    } <= declared
