"""The clinic's outcomes: aggregation in SQL, the two charts, and the page with its downloads."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from maintenance.services import booster_schedule
from patients.models import Diagnosis, PHQ9Assessment
from patients.phq9 import ITEM_FIELDS, phq9_outcome
from sessions import outcomes
from sessions.charts import (
    booster_week_bins,
    clinic_response_curve,
    response_curve_summary,
    response_curve_table,
    time_to_booster_summary,
    time_to_first_booster,
)
from sessions.models import InductionSeries, InfusionSession, Route, SessionKind, SessionStatus
from sessions.outcomes import CurvePoint, OutcomeFilters, after_series_days
from sessions.services import (
    series_create,
    series_schedule_makeup,
    session_cancel,
    session_complete,
    session_mark_missed,
    session_start,
)
from tests.factories import MaintenancePlanFactory, PatientFactory, PHQ9Factory, ProtocolFactory

NEW_YORK = ZoneInfo("America/New_York")
#: Every record below is in the past of this Monday noon.
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=NEW_YORK)
UNPROCESSABLE = 422
URL = "/infusions/outcomes/"


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=NEW_YORK)


def d(month: int, day: int) -> dt.date:
    return dt.date(2026, month, day)


def phq9(patient, taken_at: dt.datetime, total: int) -> PHQ9Assessment:
    """A PHQ-9 adding up to ``total`` (0-24 over items 1-8; item 9 is 0)."""
    items = {field: min(3, max(0, total - 3 * n)) for n, field in enumerate(ITEM_FIELDS[:8])}
    assessment = PHQ9Factory(patient=patient, taken_at=taken_at, **items, item_9=0)
    assert assessment.total == total
    return assessment


def give(session: InfusionSession, by) -> InfusionSession:
    """Give a booked infusion at its time: 40 minutes from the booked start."""
    session = session_start(session=session, by=by, started_at=session.scheduled_at)
    return session_complete(session=session, by=by, ended_at=session.scheduled_at + dt.timedelta(minutes=40))


def give_series(patient, protocol, start: dt.date, scores: list[int | None], *, by) -> InductionSeries:
    """Book a past series from ``start`` (09:00) and give its first ``len(scores)`` infusions,
    each after a pre-infusion PHQ-9 of that score at 08:40 (None: no questionnaire)."""
    series = series_create(patient=patient, protocol=protocol, start_date=start, created_by=by, allow_past=True)
    for session, score in zip(series.sessions.order_by("scheduled_at"), scores, strict=False):
        if score is not None:
            phq9(patient, session.scheduled_at - dt.timedelta(minutes=20), score)
        give(session, by)
    return series


def last_started(series: InductionSeries) -> dt.datetime:
    return series.sessions.filter(status=SessionStatus.COMPLETED).latest("scheduled_at").started_at


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def three(db):
    """Three IV infusions, twice a week."""
    return ProtocolFactory(name="IV 3 x twice weekly", infusion_count=3)


@pytest.fixture
def im_three(db):
    return ProtocolFactory(name="IM 3 x twice weekly", infusion_count=3, route=Route.IM)


@pytest.fixture
def two_complete(three, clinician):
    """Two complete series (A from Mon 2 March, B from Tue 3 March), all scores chosen:

    infusion 1: 20 and 16 (mean 18, sd sqrt 8, se 2); infusion 2: 14 and 12 (mean 13, se 1);
    infusion 3: 10 and 8 (mean 9, se 1); after: 4 and 8 (mean 6, se 2).
    A: 20 -> 4, response and remission. B: 16 -> 8, exactly 50 %: response, no remission.
    """
    a = PatientFactory(first_name="Ada")
    phq9(a, at(d(2, 25), 10), 24)  # older than the baseline: not the latest
    series_a = give_series(a, three, d(3, 2), [20, 14, 10], by=clinician)  # Mon 2, Thu 5, Mon 9 March
    phq9(a, at(d(3, 4), 10), 3)  # the day before infusion 2: not its clinic day
    phq9(a, at(d(3, 5), 7), 23)  # earlier on infusion 2's day: superseded by the 08:40 one
    phq9(a, at(d(3, 5), 10, 30), 24)  # after infusion 2 started: not a pre-infusion score
    phq9(a, at(d(3, 12), 10), 6)
    phq9(a, at(d(3, 16), 10), 4)  # the latest within 14 days after Mon 9 March 09:00
    phq9(a, at(d(3, 24), 10), 2)  # 15 days after: outside the window

    b = PatientFactory(first_name="Bo")
    series_b = give_series(b, three, d(3, 3), [16, 12, 8], by=clinician)  # Tue 3, Fri 6, Mon 9 March
    phq9(b, at(d(3, 13), 10), 8)
    return series_a, series_b


def point(points: list[CurvePoint], infusion: int | None) -> CurvePoint:
    return next(p for p in points if p.infusion == infusion)


# --- The aggregation ----------------------------------------------------------------------------


def test_it_averages_the_pre_infusion_score_by_infusion_number_with_its_confidence_interval(two_complete):
    points = outcomes.response_curve(OutcomeFilters())

    assert [(p.label, p.n, p.mean) for p in points] == [
        ("Infusion 1", 2, 18),
        ("Infusion 2", 2, 13),
        ("Infusion 3", 2, 9),
        ("After the series", 2, 6),
    ]
    first = point(points, 1)
    assert first.sd == pytest.approx(math.sqrt(8))
    assert (first.ci_low, first.ci_high) == (pytest.approx(18 - 3.92), pytest.approx(18 + 3.92))
    assert (point(points, 2).ci_low, point(points, 2).ci_high) == (pytest.approx(11.04), pytest.approx(14.96))
    after = point(points, None)
    assert (after.ci_low, after.ci_high) == (pytest.approx(2.08), pytest.approx(9.92))


def test_it_counts_response_and_remission_after_complete_series(two_complete):
    result = outcomes.series_outcomes(OutcomeFilters())

    assert result == outcomes.SeriesOutcomes(
        complete=2, with_after=2, with_baseline_and_after=2, in_response=2, in_remission=1
    )
    assert str(result.response) == "2 of 2 series (100 %) in response"
    assert str(result.remission) == "1 of 2 series (50 %) in remission"


def test_a_series_in_progress_counts_for_its_infusions_but_not_after(two_complete, three, clinician):
    c = PatientFactory()
    give_series(c, three, d(3, 2), [12, 10], by=clinician)  # 2 of 3 given
    phq9(c, at(d(3, 6), 10), 3)  # after its last infusion so far: the series is not over

    points = outcomes.response_curve(OutcomeFilters())

    assert (point(points, 1).n, point(points, 1).mean, point(points, 1).sd) == (3, 16, 4)
    assert point(points, 1).ci_high == pytest.approx(16 + 1.96 * 4 / math.sqrt(3))
    assert (point(points, 2).n, point(points, 2).mean) == (3, 12)
    assert (point(points, 3).n, point(points, 3).mean) == (2, 9)
    assert (point(points, None).n, point(points, None).mean) == (2, 6)
    assert outcomes.series_outcomes(OutcomeFilters()).complete == 2


def test_a_missed_infusion_holds_no_number_and_its_make_up_does(three, clinician, scheduler):
    patient = PatientFactory()
    series = series_create(patient=patient, protocol=three, start_date=d(3, 2), created_by=scheduler, allow_past=True)
    first, second, third = series.sessions.order_by("scheduled_at")
    session_mark_missed(session=second, by=scheduler, reason="Did not attend")
    makeup = series_schedule_makeup(series=series, scheduled_at=at(d(3, 12), 9), by=scheduler, allow_past=True)
    for session, score in ((first, 15), (third, 11), (makeup, 7)):
        phq9(patient, session.scheduled_at - dt.timedelta(minutes=20), score)
        give(session, clinician)

    points = outcomes.response_curve(OutcomeFilters())

    assert [(p.infusion, p.mean) for p in points] == [(1, 15), (2, 11), (3, 7)]
    assert outcomes.series_outcomes(OutcomeFilters()).complete == 1


def test_the_pre_infusion_score_is_from_the_clinic_day_not_the_utc_day(three, clinician):
    patient = PatientFactory()
    # Sunday 21:30 in New York is already Monday in UTC, the day of the first infusion.
    phq9(patient, at(d(3, 1), 21, 30), 20)
    give_series(patient, three, d(3, 2), [None, 12], by=clinician)

    assert [(p.infusion, p.mean) for p in outcomes.response_curve(OutcomeFilters())] == [(2, 12)]


def test_the_score_after_the_series_is_the_latest_within_fourteen_days_of_the_last_infusion(three, clinician):
    edge, late = PatientFactory(), PatientFactory()
    for patient, after in ((edge, dt.timedelta(days=after_series_days())), (late, dt.timedelta(days=14, minutes=1))):
        series = give_series(patient, three, d(3, 2) if patient is edge else d(3, 3), [18, 12, 9], by=clinician)
        phq9(patient, last_started(series) + after, 2)

    result = outcomes.series_outcomes(OutcomeFilters())

    assert (result.complete, result.with_after, result.in_remission) == (2, 1, 1)


def test_response_needs_a_baseline_in_the_window_and_above_zero(three, clinician):
    no_baseline, zero = PatientFactory(), PatientFactory()
    phq9(no_baseline, at(d(2, 15), 10), 20)  # 15 days before the first infusion: too early
    series = give_series(no_baseline, three, d(3, 2), [None, 12, 9], by=clinician)
    phq9(no_baseline, last_started(series) + dt.timedelta(days=3), 4)
    series = give_series(zero, three, d(3, 3), [0, 0, 0], by=clinician)
    phq9(zero, last_started(series) + dt.timedelta(days=3), 0)

    result = outcomes.series_outcomes(OutcomeFilters())

    # Remission counts both; response only the one with a baseline, which cannot halve from 0.
    assert result == outcomes.SeriesOutcomes(
        complete=2, with_after=2, with_baseline_and_after=1, in_response=0, in_remission=2
    )
    assert phq9_outcome(baseline=0, current=0).response is False


def test_it_filters_by_protocol_route_diagnosis_and_start_date(two_complete, im_three, three, clinician):
    ptsd = PatientFactory(primary_diagnosis=Diagnosis.PTSD)
    series = give_series(ptsd, im_three, d(4, 6), [22, 18, 11], by=clinician)
    phq9(ptsd, last_started(series) + dt.timedelta(days=2), 11)

    def infusion_one(**filters) -> tuple[int, float]:
        first = point(outcomes.response_curve(OutcomeFilters(**filters)), 1)
        return first.n, first.mean

    assert infusion_one() == (3, 58 / 3)
    assert infusion_one(protocol_id=im_three.pk) == (1, 22)
    assert infusion_one(protocol_id=three.pk) == (2, 18)
    assert infusion_one(route=Route.IM) == (1, 22)
    assert infusion_one(diagnosis=Diagnosis.PTSD) == (1, 22)
    assert infusion_one(diagnosis=Diagnosis.TREATMENT_RESISTANT_DEPRESSION) == (2, 18)
    assert infusion_one(started_from=d(4, 1)) == (1, 22)
    assert infusion_one(started_to=d(3, 2)) == (1, 20)  # inclusive: A starts on 2 March, B on the 3rd
    assert infusion_one(started_from=d(3, 3), started_to=d(3, 3)) == (1, 16)
    assert outcomes.response_curve(OutcomeFilters(route=Route.INTRANASAL)) == []
    assert outcomes.series_outcomes(OutcomeFilters(route=Route.IM)) == outcomes.SeriesOutcomes(1, 1, 1, 1, 0)
    assert outcomes.series_outcomes(OutcomeFilters(route=Route.INTRANASAL)) == outcomes.SeriesOutcomes(0, 0, 0, 0, 0)


def test_it_measures_the_days_to_the_first_booster_of_each_complete_series(two_complete, three, clinician):
    series_a, series_b = two_complete
    a, b = series_a.patient, series_b.patient
    for patient in (a, b):
        MaintenancePlanFactory(patient=patient, protocol=three)
    cancelled = booster_schedule(patient=a, scheduled_at=at(d(3, 25), 10), by=clinician, allow_past=True)
    session_cancel(session=cancelled, by=clinician, reason="Unwell")  # a cancelled booster does not count
    booster_schedule(patient=a, scheduled_at=at(d(4, 8), 10), by=clinician, allow_past=True)  # booked: 30 days
    booster_schedule(patient=a, scheduled_at=at(d(5, 6), 10), by=clinician, allow_past=True)
    give(booster_schedule(patient=b, scheduled_at=at(d(4, 17), 10), by=clinician, allow_past=True), clinician)  # 39

    # A patient who restarted induction: the booster belongs to the new episode only.
    g = PatientFactory()
    give_series(g, three, d(3, 2), [20, 16, 14], by=clinician)
    give_series(g, three, d(4, 6), [19, 12, 8], by=clinician)  # Mon 6, Thu 9, Mon 13 April
    MaintenancePlanFactory(patient=g, protocol=three)
    booster_schedule(patient=g, scheduled_at=at(d(5, 11), 10), by=clinician, allow_past=True)  # 28 days

    # In progress: no end of induction yet, whatever the bookings.
    give_series(PatientFactory(), three, d(5, 25), [15], by=clinician)

    assert outcomes.days_to_first_booster(OutcomeFilters()) == [28, 30, 39]
    assert outcomes.days_to_first_booster(OutcomeFilters(started_to=d(3, 31))) == [30, 39]
    assert outcomes.series_outcomes(OutcomeFilters()).complete == 4


def test_nothing_to_count_gives_empty_results(db):
    assert outcomes.response_curve(OutcomeFilters()) == []
    assert outcomes.series_outcomes(OutcomeFilters()) == outcomes.SeriesOutcomes(0, 0, 0, 0, 0)
    assert outcomes.days_to_first_booster(OutcomeFilters()) == []
    assert str(outcomes.SeriesOutcomes(0, 0, 0, 0, 0).response) == "No series can be counted for response yet."


def test_a_share_rounds_half_up():
    assert str(outcomes.Share(1, 8, "remission")) == "1 of 8 series (13 %) in remission"
    assert str(outcomes.Share(14, 20, "response")) == "14 of 20 series (70 %) in response"


def _reference_outcomes() -> tuple[dict, tuple[int, int, int, int, int], list[int]]:
    """The same numbers the slow way, through the model methods and patients.phq9 rules."""
    sums: dict = {}
    counts = [0, 0, 0, 0, 0]
    days = []

    def add(key, total):
        n, s, ss = sums.get(key, (0, 0, 0))
        sums[key] = (n + 1, s + total, ss + total * total)

    for series in InductionSeries.objects.select_related("patient"):
        patient = series.patient
        given = list(series.sessions.filter(status=SessionStatus.COMPLETED).order_by("scheduled_at", "id"))
        for number, session in enumerate(given, start=1):
            pre = (
                patient.phq9_assessments.filter(taken_at__lte=session.started_at, taken_at__date=session.scheduled_on)
                .order_by("-taken_at", "-id")
                .first()
            )
            if pre:
                add(number, pre.total)
        if len(given) < series.planned_infusions:
            continue
        counts[0] += 1
        last = given[-1]
        after = (
            patient.phq9_assessments.filter(
                taken_at__gt=last.started_at, taken_at__lte=last.started_at + dt.timedelta(days=after_series_days())
            )
            .order_by("-taken_at", "-id")
            .first()
        )
        if after:
            add(None, after.total)
            baseline = series.baseline()
            outcome = phq9_outcome(baseline=baseline.total if baseline else None, current=after.total)
            counts[1] += 1
            counts[2] += baseline is not None
            counts[3] += bool(outcome.response)
            counts[4] += outcome.remission
        next_start = (
            InductionSeries.objects.filter(patient=patient, start_date__gt=series.start_date)
            .order_by("start_date")
            .values_list("start_date", flat=True)
            .first()
        )
        boosters = InfusionSession.objects.filter(
            patient=patient,
            kind=SessionKind.BOOSTER,
            status__in=[SessionStatus.SCHEDULED, SessionStatus.COMPLETED],
            scheduled_on__gt=last.scheduled_on,
        )
        if next_start:
            boosters = boosters.filter(scheduled_on__lt=next_start)
        first = boosters.order_by("scheduled_on").first()
        if first:
            days.append((first.scheduled_on - last.scheduled_on).days)
    return sums, tuple(counts), sorted(days)


@pytest.mark.slow
def test_the_sql_agrees_with_the_model_rules_on_the_demo_clinic(db, clock):
    clock.move_to(dt.datetime(2026, 11, 18, 14, 0, tzinfo=NEW_YORK))
    call_command("seed_demo", stdout=StringIO())
    # The demo records PHQ-9s before infusions only: add follow-ups after complete series,
    # some inside the window, some outside, some two (the latest counts).
    for index, series in enumerate(InductionSeries.objects.with_progress().select_related("patient")):
        if not series.is_complete:
            continue
        last = last_started(series)
        if last + dt.timedelta(days=16) > dt.datetime.now(tz=NEW_YORK):
            continue
        for offset_days in ([3], [2, 9], [15], [13, 16])[index % 4]:
            phq9(series.patient, last + dt.timedelta(days=offset_days), (index * 5 + offset_days) % 25)

    sums, counts, days = _reference_outcomes()

    points = outcomes.response_curve(OutcomeFilters())
    assert {p.infusion: (p.n, p.mean) for p in points} == {key: (n, s / n) for key, (n, s, _) in sums.items()}
    assert {p.infusion: p.sd for p in points} == pytest.approx(
        {key: math.sqrt((n * ss - s * s) / (n * (n - 1))) if n > 1 else None for key, (n, s, ss) in sums.items()}
    )
    assert tuple(vars(outcomes.series_outcomes(OutcomeFilters())).values()) == counts
    assert counts[1] > 5
    assert counts[3] > 0
    assert outcomes.days_to_first_booster(OutcomeFilters()) == days
    assert len(days) > 5


# --- The charts ----------------------------------------------------------------------------------


def curve(*rows: tuple[int | None, int, float, float | None]) -> list[CurvePoint]:
    return [CurvePoint(infusion=infusion, n=n, mean=mean, sd=sd) for infusion, n, mean, sd in rows]


def test_the_curve_needs_two_points():
    assert clinic_response_curve([]) is None
    assert clinic_response_curve(curve((1, 4, 18.0, 3.0))) is None
    assert response_curve_summary([]).startswith("Not enough data to draw a curve yet")


def test_the_curve_of_one_series_has_no_confidence_band():
    figure = clinic_response_curve(curve((1, 1, 20, None), (2, 1, 14, None), (3, 1, 9, None), (None, 1, 4, None)))

    assert [trace.name for trace in figure.data] == ["Mean PHQ-9"]
    line = figure.data[0]
    assert list(line.x) == [1, 2, 3, 4]
    assert list(figure.layout.xaxis.ticktext) == ["1", "2", "3", "After"]
    assert list(figure.layout.yaxis.range) == [0, 27]
    assert len(figure.layout.shapes) == 5  # the PHQ-9 bands
    assert line.customdata[0][1] == 1
    assert "fewer than 2 series" in line.customdata[0][2]


def test_the_curve_of_series_in_progress_ends_without_an_after_point():
    figure = clinic_response_curve(curve((1, 3, 18, 2.0), (2, 2, 13, 1.0)))

    band, _line = figure.data
    assert band.fill == "toself"
    assert list(band.x) == [1, 2, 2, 1]
    assert list(band.y) == pytest.approx(
        [18 + 1.96 * 2 / math.sqrt(3), 13 + 1.96 / math.sqrt(2), 13 - 1.96 / math.sqrt(2), 18 - 1.96 * 2 / math.sqrt(3)]
    )
    assert list(figure.layout.xaxis.ticktext) == ["1", "2"]
    assert "no complete series has a PHQ-9 within 14 days after its end yet" in response_curve_summary(
        curve((1, 3, 18, 2.0), (2, 2, 13, 1.0))
    )


def test_the_band_breaks_where_a_point_has_no_interval():
    figure = clinic_response_curve(curve((1, 3, 18, 2.0), (2, 3, 13, 1.0), (3, 1, 9, None), (None, 2, 6, 2.0)))

    band = figure.data[0]
    assert list(band.x) == [1, 2, 2, 1, None, 4, 4]
    assert list(figure.data[1].marker.symbol) == ["circle", "circle", "circle", "diamond"]


def test_the_curve_table_and_summary_give_n_means_and_intervals():
    points = curve((1, 2, 18, math.sqrt(8)), (2, 1, 13.25, None), (None, 2, 6, math.sqrt(8)))
    headers, rows = response_curve_table(points)

    assert headers == ["Point", "Series (n)", "Mean PHQ-9", "95 % CI lower", "95 % CI upper"]
    assert rows == [
        ["Infusion 1", 2, "18.0", "14.1", "21.9"],
        ["Infusion 2", 1, "13.3", "", ""],
        ["After the series", 2, "6.0", "2.1", "9.9"],
    ]
    assert response_curve_summary(points) == (
        "Mean PHQ-9 was 18.0 before infusion 1 (n = 2) and 13.3 before infusion 2 (n = 1); "
        "6.0 within 14 days after the series (n = 2)."
    )


def test_the_booster_histogram_counts_series_by_week():
    assert time_to_first_booster([]) is None
    assert booster_week_bins([30, 38, 28, 45]) == [(4, 2), (5, 1), (6, 1)]
    assert booster_week_bins([10, 40]) == [(1, 1), (2, 0), (3, 0), (4, 0), (5, 1)]

    figure = time_to_first_booster([30])
    bar = figure.data[0]
    assert (list(bar.x), list(bar.y)) == ([4.5], [1])
    assert bar.customdata[0] == "4 to 5 weeks (28-34 days)"
    assert list(figure.layout.xaxis.range) == [0, 5]


def test_the_booster_summary_says_how_many_and_when():
    assert time_to_booster_summary([28, 30, 38], complete=4) == (
        "3 of 4 complete series have a first booster given or booked; it came a median of 30 days "
        "(4.3 weeks) after the last induction infusion, from 28 to 38 days."
    )
    assert time_to_booster_summary([], complete=2) == "None of the 2 complete series has a booster given or booked yet."
    assert time_to_booster_summary([], complete=0).startswith("No complete induction series matches")


# --- The page ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"),
    [("clinician", 200), ("scheduler", 200), ("superuser", 200), ("patient", 403), ("anonymous", 302)],
)
def test_the_page_opens_for_staff_only(db, client, request, role, expected):
    assert reverse("infusions:outcomes") == URL
    if role == "patient":
        client.force_login(request.getfixturevalue("patient").user)
    elif role != "anonymous":
        client.force_login(request.getfixturevalue(role))

    for query in ("", "?download=response_curve", "?download=time_to_booster"):
        response = client.get(URL + query)
        assert response.status_code == expected
        if role == "anonymous":
            assert response["Location"].startswith(reverse("login"))


def test_the_page_shows_the_shares_and_both_charts_with_their_tables(client, clinician, two_complete, three):
    MaintenancePlanFactory(patient=two_complete[0].patient, protocol=three)
    booster_schedule(patient=two_complete[0].patient, scheduled_at=at(d(4, 8), 10), by=clinician, allow_past=True)
    client.force_login(clinician)

    response = client.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert "2 of 2 series (100 %) in response" in html
    assert "1 of 2 series (50 %) in remission" in html
    assert 'id="response-curve" type="application/json"' in html
    assert 'id="time-to-booster" type="application/json"' in html
    assert "<td>After the series</td><td>2</td><td>6.0</td><td>2.1</td><td>9.9</td>" in html
    assert "<td>4 to 5 weeks (28-34 days)</td><td>1</td>" in html
    assert "vendor/plotly.min.js" in html
    assert "js/charts.js" in html
    assert "<script>" not in html  # no inline scripts: one static script draws the charts
    assert "?download=response_curve" in html
    assert "?download=time_to_booster" in html
    assert two_complete[0].patient.last_name not in html  # aggregates only


def test_an_empty_clinic_says_plainly_there_is_not_enough_data(client, clinician):
    client.force_login(clinician)

    html = client.get(URL).content.decode()

    assert "Not enough data to draw a curve yet" in html
    assert "No complete induction series matches these filters yet" in html
    assert "there is no booster timing to show" in html
    assert 'class="chart__plot"' not in html
    assert "Download the data (CSV)" not in html


def test_the_filter_form_keeps_its_values_and_filters_the_page(client, clinician, two_complete, im_three):
    client.force_login(clinician)

    response = client.get(URL, {"route": "iv", "diagnosis": "trd", "started_from": "2026-03-03"})

    html = response.content.decode()
    assert '<option value="iv" selected>' in html
    assert '<option value="trd" selected>' in html
    assert 'value="2026-03-03"' in html
    assert "1 of 1 series (100 %) in response" in html  # B only: A started on 2 March
    assert "?route=iv&amp;diagnosis=trd&amp;started_from=2026-03-03&amp;download=response_curve" in html
    assert 'href="/infusions/outcomes/">Clear filters</a>' in html

    html = client.get(URL, {"route": "im", "diagnosis": "ptsd"}).content.decode()
    assert "No complete induction series matches these filters yet" in html
    assert "Clear filters" in html


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"started_from": "2026-02-30"}, "started_from", "Enter a valid date."),
        ({"started_to": "26-3-2026"}, "started_to", "Enter a valid date."),
        ({"started_from": "0201-03-02"}, "started_from", "Enter a date between 1900 and 2100."),
        ({"started_from": "2026-04-01", "started_to": "2026-03-01"}, "started_to", "This date is before the first"),
        ({"protocol": "not-a-protocol"}, "protocol", "is not a valid UUID."),
        ({"protocol": "8a0e2f4c-0d5e-4b8e-9a55-3f1d2c4b5a69"}, "protocol", "Select a valid choice."),
        ({"route": "rectal"}, "route", "Select a valid choice."),
    ],
)
def test_a_bad_filter_shows_its_error_next_to_the_field(client, clinician, two_complete, query, field, message):
    client.force_login(clinician)

    response = client.get(URL, query)

    assert response.status_code == UNPROCESSABLE
    form = response.context["form"]
    assert any(message in error for error in form.errors[field])
    html = response.content.decode()
    assert "field--invalid" in html
    assert message.split(".")[0] in html
    assert "in response" not in html
    assert client.get(URL, {**query, "download": "response_curve"}).status_code == UNPROCESSABLE


def test_the_csv_downloads_hold_each_charts_table_with_the_same_filters(client, clinician, two_complete, im_three):
    ptsd = PatientFactory(primary_diagnosis=Diagnosis.PTSD)
    give_series(ptsd, im_three, d(4, 6), [22, 18, 11], by=clinician)
    client.force_login(clinician)

    response = client.get(URL, {"download": "response_curve"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="outcomes-response-curve-2026-06-01.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [
        ["Point", "Series (n)", "Mean PHQ-9", "95 % CI lower", "95 % CI upper"],
        ["Infusion 1", "3", "19.3", "15.9", "22.8"],
        ["Infusion 2", "3", "14.7", "11.2", "18.1"],
        ["Infusion 3", "3", "9.7", "7.9", "11.4"],
        ["After the series", "2", "6.0", "2.1", "9.9"],
    ]

    rows = list(
        csv.reader(io.StringIO(client.get(URL, {"download": "response_curve", "route": "im"}).content.decode()))
    )
    assert rows[1:] == [
        ["Infusion 1", "1", "22.0", "", ""],
        ["Infusion 2", "1", "18.0", "", ""],
        ["Infusion 3", "1", "11.0", "", ""],
    ]

    response = client.get(URL, {"download": "time_to_booster"})
    assert response["Content-Disposition"] == 'attachment; filename="outcomes-time-to-booster-2026-06-01.csv"'
    assert list(csv.reader(io.StringIO(response.content.decode()))) == [["Time after induction", "Series"]]
    assert client.get(URL, {"download": "everything"}).status_code == 404


def test_the_page_runs_the_same_few_queries_for_2_and_for_10_series(
    client, clinician, three, django_assert_max_num_queries
):
    client.force_login(clinician)

    def add_series(count: int) -> None:
        for _ in range(count):
            index = InductionSeries.objects.count()
            patient = PatientFactory()
            start = d(3, 2) + dt.timedelta(days=7 * (index % 6) + index // 6)  # Mondays, then Tuesdays
            series = give_series(patient, three, start, [20, 15, 10], by=clinician)
            phq9(patient, last_started(series) + dt.timedelta(days=3), 5)

    def page_queries(count: int) -> list[str]:
        with django_assert_max_num_queries(9), CaptureQueriesContext(connection) as queries:
            response = client.get(URL)
        assert f"{count} of {count} series (100 %) in response" in response.content.decode()
        return [query["sql"] for query in queries]

    add_series(2)
    with_two = page_queries(2)
    add_series(8)
    with_ten = page_queries(10)

    assert len(with_ten) == len(with_two)
    assert sum("ROW_NUMBER()" in sql for sql in with_ten) == 1  # one statement for the three aggregates
