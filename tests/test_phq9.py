"""PHQ-9 scoring, bands, the item-9 safety flag, baseline, response and remission."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from patients.models import PHQ9Assessment, PHQ9Source
from patients.phq9 import (
    ITEM_FIELDS,
    LOINC_ITEMS,
    LOINC_TOTAL,
    Severity,
    phq9_baseline,
    phq9_outcome,
    severity_case,
    severity_for_total,
)
from patients.services import phq9_acknowledge_safety, phq9_record
from tests.factories import PatientFactory, PHQ9Factory


def answers(*values: int | None) -> dict[str, int | None]:
    return dict(zip(ITEM_FIELDS, values, strict=True))


ALL_ONES = answers(1, 1, 1, 1, 1, 1, 1, 1, 1)


# --- Scoring ---------------------------------------------------------------------


@pytest.mark.django_db
def test_it_totals_the_nine_items_and_ignores_the_difficulty_question(patient, clinician):
    assessment = phq9_record(
        patient=patient, answers=answers(3, 2, 1, 0, 3, 2, 1, 0, 0), difficulty="extremely", entered_by=clinician
    )
    assert assessment.total == 12
    assert assessment.difficulty == "extremely"
    assert PHQ9Assessment.objects.get(pk=assessment.pk).total == 12


@pytest.mark.django_db
def test_it_stores_every_item_not_only_the_total(patient, clinician):
    assessment = phq9_record(patient=patient, answers=answers(3, 2, 1, 0, 3, 2, 1, 0, 1), entered_by=clinician)
    stored = PHQ9Assessment.objects.get(pk=assessment.pk)
    assert stored.items == (3, 2, 1, 0, 3, 2, 1, 0, 1)


@given(st.lists(st.integers(min_value=0, max_value=3), min_size=9, max_size=9))
def test_it_bands_every_possible_total(items):
    total = sum(items)
    band = severity_for_total(total)
    expected = (
        Severity.NONE_MINIMAL
        if total <= 4
        else Severity.MILD
        if total <= 9
        else Severity.MODERATE
        if total <= 14
        else Severity.MODERATELY_SEVERE
        if total <= 19
        else Severity.SEVERE
    )
    assert band == expected


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, Severity.NONE_MINIMAL),
        (4, Severity.NONE_MINIMAL),
        (5, Severity.MILD),
        (9, Severity.MILD),
        (10, Severity.MODERATE),
        (14, Severity.MODERATE),
        (15, Severity.MODERATELY_SEVERE),
        (19, Severity.MODERATELY_SEVERE),
        (20, Severity.SEVERE),
        (27, Severity.SEVERE),
    ],
)
def test_it_places_band_boundaries_as_the_reference_says(total, band):
    assert severity_for_total(total) == band


@pytest.mark.parametrize("total", [-1, 28])
def test_it_refuses_a_total_outside_0_to_27(total):
    with pytest.raises(ValueError, match="0-27"):
        severity_for_total(total)


@pytest.mark.django_db
def test_the_database_bands_agree_with_python(patient):
    for level in range(4):
        PHQ9Factory(patient=patient, level=level)
    rows = PHQ9Assessment.objects.annotate(band=severity_case()).values_list("total", "band")
    assert {(total, band) for total, band in rows} == {(t, severity_for_total(t).value) for t, _ in rows}


def test_item_9_has_its_own_loinc_code_distinct_from_the_total():
    assert LOINC_ITEMS["item_9"] == "44260-8"
    assert LOINC_TOTAL == "44261-6"


# --- Bad input ---------------------------------------------------------------------


@pytest.mark.django_db
def test_it_rejects_an_incomplete_form_and_stores_nothing(patient, clinician):
    with pytest.raises(ValidationError) as error:
        phq9_record(patient=patient, answers=answers(1, 1, 1, 1, None, 1, 1, 1, 1), entered_by=clinician)
    assert "item_5" in error.value.message_dict
    assert not PHQ9Assessment.objects.exists()


@pytest.mark.django_db
def test_it_rejects_a_form_missing_item_9(patient, clinician):
    partial = dict.fromkeys(ITEM_FIELDS[:8], 1)
    with pytest.raises(ValidationError) as error:
        phq9_record(patient=patient, answers=partial, entered_by=clinician)
    assert "item_9" in error.value.message_dict
    assert not PHQ9Assessment.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [4, -1, 10])
def test_it_rejects_an_answer_out_of_range(patient, clinician, bad):
    with pytest.raises(ValidationError) as error:
        phq9_record(patient=patient, answers=answers(1, 1, bad, 1, 1, 1, 1, 1, 1), entered_by=clinician)
    assert "item_3" in error.value.message_dict
    assert not PHQ9Assessment.objects.exists()


@pytest.mark.django_db
def test_it_rejects_an_unknown_difficulty_answer(patient, clinician):
    with pytest.raises(ValidationError) as error:
        phq9_record(patient=patient, answers=ALL_ONES, difficulty="unbearable", entered_by=clinician)
    assert "difficulty" in error.value.message_dict
    assert not PHQ9Assessment.objects.exists()


@pytest.mark.django_db
def test_it_rejects_a_form_taken_in_the_future(patient, clinician):
    with pytest.raises(ValidationError) as error:
        phq9_record(
            patient=patient, answers=ALL_ONES, taken_at=timezone.now() + dt.timedelta(days=1), entered_by=clinician
        )
    assert "taken_at" in error.value.message_dict


@pytest.mark.django_db
def test_the_database_refuses_an_item_out_of_range_even_by_raw_sql(patient):
    assessment = PHQ9Factory(patient=patient)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE patients_phq9assessment SET item_4 = 5 WHERE id = %s", [assessment.pk])


@pytest.mark.django_db
def test_the_total_cannot_be_written_apart_from_the_items(patient):
    assessment = PHQ9Factory(patient=patient, level=1)
    with pytest.raises(Exception), transaction.atomic(), connection.cursor() as cursor:  # noqa: B017,PT011
        cursor.execute("UPDATE patients_phq9assessment SET total = 0 WHERE id = %s", [assessment.pk])
    assessment.refresh_from_db()
    assert assessment.total == 8


@pytest.mark.django_db
def test_only_clinicians_enter_a_phq9_for_the_clinic(patient, scheduler):
    with pytest.raises(PermissionDenied):
        phq9_record(patient=patient, answers=ALL_ONES, entered_by=scheduler)
    assert not PHQ9Assessment.objects.exists()


@pytest.mark.django_db
def test_a_patient_enters_only_their_own_phq9_in_the_portal(patient, other_patient):
    mine = phq9_record(patient=patient, answers=ALL_ONES, source=PHQ9Source.PORTAL, entered_by=patient.user)
    assert mine.source == PHQ9Source.PORTAL
    with pytest.raises(PermissionDenied):
        phq9_record(patient=other_patient, answers=ALL_ONES, source=PHQ9Source.PORTAL, entered_by=patient.user)
    with pytest.raises(PermissionDenied):
        phq9_record(patient=patient, answers=ALL_ONES, source=PHQ9Source.CLINIC, entered_by=patient.user)
    assert PHQ9Assessment.objects.count() == 1


# --- Item 9 ------------------------------------------------------------------------


@pytest.mark.django_db
def test_item_9_above_0_is_a_safety_event_whatever_the_total(patient, clinician):
    assessment = phq9_record(patient=patient, answers=answers(0, 0, 0, 0, 0, 0, 0, 0, 1), entered_by=clinician)
    assert assessment.total == 1
    assert assessment.severity == Severity.NONE_MINIMAL
    assert assessment.has_safety_flag
    assert assessment.needs_acknowledgement


@pytest.mark.django_db
def test_item_9_at_0_raises_no_safety_flag(patient, clinician):
    assessment = phq9_record(patient=patient, answers=answers(3, 3, 3, 3, 3, 3, 3, 3, 0), entered_by=clinician)
    assert assessment.severity == Severity.SEVERE
    assert not assessment.has_safety_flag


@pytest.mark.django_db
def test_a_clinician_acknowledges_a_safety_event_with_the_action_taken(patient, clinician):
    assessment = PHQ9Factory(patient=patient, item_9=2)
    phq9_acknowledge_safety(assessment=assessment, by=clinician, action="Called patient; safety plan reviewed.")
    assessment.refresh_from_db()
    assert assessment.safety_acknowledged_by == clinician
    assert assessment.safety_acknowledged_at is not None
    assert assessment.safety_action == "Called patient; safety plan reviewed."
    assert not assessment.needs_acknowledgement


@pytest.mark.django_db
def test_an_acknowledgement_needs_the_action_taken(patient, clinician):
    assessment = PHQ9Factory(patient=patient, item_9=1)
    with pytest.raises(ValidationError) as error:
        phq9_acknowledge_safety(assessment=assessment, by=clinician, action="   ")
    assert "safety_action" in error.value.message_dict
    assessment.refresh_from_db()
    assert assessment.safety_acknowledged_at is None


@pytest.mark.django_db
def test_a_scheduler_cannot_acknowledge_a_safety_event(patient, scheduler):
    assessment = PHQ9Factory(patient=patient, item_9=1)
    with pytest.raises(PermissionDenied):
        phq9_acknowledge_safety(assessment=assessment, by=scheduler, action="Noted")
    assessment.refresh_from_db()
    assert assessment.safety_acknowledged_at is None


@pytest.mark.django_db
def test_a_safety_event_is_acknowledged_once(patient, clinician, other_clinician):
    assessment = PHQ9Factory(patient=patient, item_9=1)
    phq9_acknowledge_safety(assessment=assessment, by=clinician, action="Called")
    with pytest.raises(ValidationError, match="already been acknowledged"):
        phq9_acknowledge_safety(assessment=assessment, by=other_clinician, action="Called too")
    assessment.refresh_from_db()
    assert assessment.safety_acknowledged_by == clinician


@pytest.mark.django_db
def test_there_is_nothing_to_acknowledge_when_item_9_is_0(patient, clinician):
    assessment = PHQ9Factory(patient=patient, item_9=0)
    with pytest.raises(ValidationError, match="no safety flag"):
        phq9_acknowledge_safety(assessment=assessment, by=clinician, action="Called")


@pytest.mark.django_db
def test_the_database_refuses_an_acknowledgement_without_a_flag(patient, clinician):
    assessment = PHQ9Factory(patient=patient, item_9=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        PHQ9Assessment.objects.filter(pk=assessment.pk).update(
            safety_acknowledged_at=timezone.now(), safety_acknowledged_by=clinician, safety_action="x"
        )


# --- Baseline, response, remission ------------------------------------------------


@pytest.mark.django_db
def test_baseline_is_the_latest_phq9_within_14_days_before_the_first_infusion(patient):
    first_infusion = timezone.now()
    PHQ9Factory(patient=patient, level=3, taken_at=first_infusion - dt.timedelta(days=20))
    older = PHQ9Factory(patient=patient, level=2, taken_at=first_infusion - dt.timedelta(days=10))
    latest = PHQ9Factory(patient=patient, level=2, item_1=3, taken_at=first_infusion - dt.timedelta(days=2))
    PHQ9Factory(patient=patient, level=1, taken_at=first_infusion + dt.timedelta(hours=2))
    assert phq9_baseline(patient=patient, first_infusion_at=first_infusion) == latest
    assert older != latest


@pytest.mark.django_db
def test_there_is_no_baseline_when_the_only_phq9_is_outside_the_window(patient):
    first_infusion = timezone.now()
    PHQ9Factory(patient=patient, taken_at=first_infusion - dt.timedelta(days=15))
    PHQ9Factory(patient=patient, taken_at=first_infusion + dt.timedelta(days=1))
    assert phq9_baseline(patient=patient, first_infusion_at=first_infusion) is None


@pytest.mark.django_db
def test_the_baseline_window_is_a_setting(patient, settings):
    settings.CLINIC_BASELINE_WINDOW_DAYS = 30
    first_infusion = timezone.now()
    taken = PHQ9Factory(patient=patient, taken_at=first_infusion - dt.timedelta(days=20))
    assert phq9_baseline(patient=patient, first_infusion_at=first_infusion) == taken


@pytest.mark.django_db
def test_baselines_belong_to_each_patient():
    a, b = PatientFactory(), PatientFactory()
    now = timezone.now()
    PHQ9Factory(patient=b, taken_at=now - dt.timedelta(days=1))
    assert phq9_baseline(patient=a, first_infusion_at=now) is None


@pytest.mark.parametrize(
    ("baseline", "current", "response", "remission"),
    [
        (20, 10, True, False),  # exactly 50 %
        (20, 11, False, False),  # 45 %
        (9, 4, True, True),  # 55 %, and below 5
        (9, 5, False, False),  # 44 %, and 5 is not remission
        (5, 4, False, True),  # remission without response
        (27, 0, True, True),
        (0, 0, False, True),  # a baseline of 0 cannot be halved
    ],
)
def test_response_is_a_50_percent_reduction_and_remission_is_below_5(baseline, current, response, remission):
    outcome = phq9_outcome(baseline=baseline, current=current)
    assert outcome.response is response
    assert outcome.remission is remission
    assert outcome.change == current - baseline


def test_without_a_baseline_response_is_unknown_but_remission_is_not():
    outcome = phq9_outcome(baseline=None, current=3)
    assert outcome.response is None
    assert outcome.change is None
    assert outcome.remission is True


@pytest.mark.parametrize(("baseline", "current", "meaningful"), [(20, 15, True), (20, 16, False), (8, 13, True)])
def test_a_change_of_5_points_either_way_is_meaningful(baseline, current, meaningful):
    assert phq9_outcome(baseline=baseline, current=current).meaningful_change is meaningful


@given(st.integers(1, 27), st.integers(0, 27))
def test_response_matches_its_definition_for_every_pair_of_totals(baseline, current):
    assert phq9_outcome(baseline=baseline, current=current).response == ((baseline - current) / baseline >= 0.5)
