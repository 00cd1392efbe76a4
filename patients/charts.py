"""A patient's response curve: one pure function from data to a Plotly figure."""

from __future__ import annotations

import datetime as dt

import plotly.graph_objects as go
from django.utils import timezone

from clinic.charts import ALERT, BOOSTER, MUTED, PRIMARY, Chart, base_layout, phq9_band_labels, phq9_band_shapes
from patients.phq9 import REMISSION_BELOW, RESPONSE_REDUCTION
from sessions.selectors import ResponseCurveData

#: The curve needs at least this many scores to be a curve.
MIN_POINTS = 2
#: Infusions are marked on a strip below the 0 line.
INFUSION_Y = -1.2


def _local(moment: dt.datetime, tz: dt.tzinfo) -> str:
    """``moment`` in the clinic's time as the curve and its table write it (2026-11-18 14:05);
    ``tz`` is the current time zone, looked up once per chart rather than per point."""
    local = moment.astimezone(tz)
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d} {local.hour:02d}:{local.minute:02d}"


def response_curve(data: ResponseCurveData) -> go.Figure | None:
    """PHQ-9 total over time, the bands shaded, baseline, 50 % response and remission lines,
    every infusion marked on the time axis and item-9 answers above 0 marked.

    None when there are fewer than two scores (the page says so in words). The figure is
    ``response_curve_spec`` validated by plotly; pages use the spec itself (the same JSON,
    without building and validating a plotly figure on every request).
    """
    spec = response_curve_spec(data)
    return None if spec is None else go.Figure(spec)


def response_curve_spec(data: ResponseCurveData) -> dict | None:
    """The response curve as a plain plotly figure dict (``data`` and ``layout``), or None
    when there are fewer than two scores. ``clinic.charts.figure_json`` adds plotly's
    template to make it the JSON ``go.Figure(spec).to_json()`` gives."""
    points = data.points
    if len(points) < MIN_POINTS:
        return None
    tz = timezone.get_current_timezone()
    taken = [_local(p.taken_at, tz) for p in points]
    traces = [
        {
            "type": "scatter",
            "name": "PHQ-9 total",
            "x": taken,
            "y": [p.total for p in points],
            "mode": "lines+markers",
            "line": {"color": PRIMARY, "width": 2.5},
            "marker": {"size": 7},
            "customdata": [[p.band, p.infusion or "between visits"] for p in points],
            "hovertemplate": "%{x|%d %b %Y}<br>PHQ-9 <b>%{y}</b> (%{customdata[0]})<br>%{customdata[1]}<extra></extra>",
        }
    ]
    flagged = [index for index, p in enumerate(points) if p.item_9 > 0]
    if flagged:
        traces.append(
            {
                "type": "scatter",
                "name": "Item 9 above 0",
                "x": [taken[index] for index in flagged],
                "y": [points[index].total for index in flagged],
                "mode": "markers",
                "marker": {"symbol": "diamond-open", "size": 15, "color": ALERT, "line": {"width": 2.5}},
                "hovertemplate": "%{x|%d %b %Y}<br>Item 9 answered above 0<extra></extra>",
            }
        )
    for is_booster, name, colour, symbol in (
        (False, "Induction infusion", PRIMARY, "triangle-up"),
        (True, "Booster", BOOSTER, "star"),
    ):
        given = [i for i in data.infusions if i.is_booster == is_booster]
        if given:
            traces.append(
                {
                    "type": "scatter",
                    "name": name,
                    "x": [_local(i.when, tz) for i in given],
                    "y": [INFUSION_Y] * len(given),
                    "mode": "markers",
                    "marker": {"symbol": symbol, "size": 10, "color": colour},
                    "customdata": [i.label for i in given],
                    "hovertemplate": "%{x|%d %b %Y}<br>%{customdata}<extra></extra>",
                }
            )
    shapes = phq9_band_shapes()
    annotations = phq9_band_labels()
    lines = [(REMISSION_BELOW, f"Remission (below {REMISSION_BELOW})", "dot")]
    if data.baseline is not None:
        baseline = data.baseline.total
        lines += [(baseline, f"Baseline {baseline}", "solid"), (baseline * RESPONSE_REDUCTION, "50 % response", "dash")]
    for y, label, dash in lines:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": y,
                "y1": y,
                "line": {"color": MUTED, "dash": dash, "width": 1.5},
            }
        )
        annotations.append(
            {
                "xref": "paper",
                "x": 0,
                "xanchor": "left",
                "y": y,
                "yanchor": "bottom",
                "text": label,
                "showarrow": False,
                "font": {"size": 11, "color": MUTED},
            }
        )
    layout = base_layout(
        shapes=shapes,
        annotations=annotations,
        yaxis={
            # In plotly's own form ({"text": ...}): the JSON is then the figure's to_json().
            "title": {"text": "PHQ-9 total"},
            "range": [-2, 27.5],
            "tickvals": [0, 5, 10, 15, 20, 27],
            "gridcolor": "#eef1f4",
        },
        xaxis={"type": "date", "gridcolor": "#eef1f4"},
    )
    return {"data": traces, "layout": layout}


def response_curve_summary(data: ResponseCurveData) -> str:
    """The chart in words (its text alternative)."""
    points = data.points
    if not points:
        return "No PHQ-9 questionnaire yet: the curve starts once there are two."
    first, last = points[0], points[-1]
    if len(points) < MIN_POINTS:
        on = f"{timezone.localtime(last.taken_at):%d %B %Y}"
        return f"Only one PHQ-9 so far ({last.total}, {last.band.lower()}, on {on}); the curve starts with the second."
    given = len(data.infusions)
    over = f", over {given} infusion{'s' if given != 1 else ''}" if given else ""
    text = (
        f"{len(points)} PHQ-9 scores from {timezone.localtime(first.taken_at):%d %B %Y} to "
        f"{timezone.localtime(last.taken_at):%d %B %Y}: from {first.total} to {last.total} ({last.band.lower()}){over}."
    )
    if data.baseline is not None:
        text += f" Baseline {data.baseline.total}."
    flagged = sum(1 for p in points if p.item_9 > 0)
    if flagged:
        text += f" Item 9 was answered above 0 {flagged} time{'s' if flagged != 1 else ''}."
    return text


def response_curve_table(data: ResponseCurveData, *, clinical: bool = True) -> tuple[list[str], list[list]]:
    """The table behind the curve; the item-9 column only for clinical readers."""
    headers = ["Date", "PHQ-9 total", "Band", *(["Item 9"] if clinical else []), "Infusion that day"]
    tz = timezone.get_current_timezone()
    rows = [
        [
            _local(p.taken_at, tz),
            p.total,
            p.band,
            *([p.item_9] if clinical else []),
            p.infusion,
        ]
        for p in reversed(data.points)
    ]
    return headers, rows


def response_curve_chart(
    data: ResponseCurveData, *, csv_url: str, clinical: bool, title: str = "Response curve"
) -> Chart:
    """The patient's response curve with its text alternative (staff page and portal).

    ``clinical``: whether the reader may see item-9 answers (clinicians, and the patient
    who gave them; not schedulers).
    """
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
