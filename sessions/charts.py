"""The clinic's outcome charts: one pure function per chart, from aggregated data to a figure.

Each figure function returns None when there is too little to draw; the page then says so
in the chart's summary. The ``*_summary`` and ``*_table`` functions give each chart its
text alternative, and the table is also the chart's CSV download.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

import plotly.graph_objects as go

from clinic.charts import BOOSTER, PRIMARY, base_layout, phq9_band_labels, phq9_band_shapes
from patients.phq9 import MAX_TOTAL
from sessions.outcomes import CurvePoint, after_series_days

#: The 95 % confidence band: the line's colour, light.
BAND_FILL = "rgba(13, 92, 110, 0.20)"
DAYS_PER_WEEK = 7


def _one_decimal(value: float | None) -> str:
    """A score to one decimal, halves rounded up (5.25 -> 5.3, as Plotly's hover shows it)."""
    if value is None:
        return ""
    return str(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


# --- Mean PHQ-9 by infusion number ----------------------------------------------------------


def _x_positions(points: Sequence[CurvePoint]) -> list[int]:
    """Infusions at their number; "after the series" one step after the last infusion."""
    last = max((point.infusion for point in points if not point.is_after), default=0)
    return [last + 1 if point.is_after else point.infusion for point in points]


def _band_outline(xs: Sequence[int], points: Sequence[CurvePoint]) -> tuple[list, list]:
    """The confidence band as closed outlines (upper edge out, lower edge back), one per run
    of neighbouring points that have an interval; runs are separated by gaps (None)."""
    runs: list[list[tuple[int, CurvePoint]]] = [[]]
    for x, point in zip(xs, points, strict=True):
        if point.ci_low is None:
            runs.append([])
        else:
            runs[-1].append((x, point))
    band_x: list = []
    band_y: list = []
    for run in (run for run in runs if run):
        if band_x:
            band_x.append(None)
            band_y.append(None)
        band_x += [x for x, _ in run] + [x for x, _ in reversed(run)]
        band_y += [p.ci_high for _, p in run] + [p.ci_low for _, p in reversed(run)]
    return band_x, band_y


def _band_labels_outside() -> list[dict]:
    """The band names in the right margin, wrapped to fit it: inside the plot they would
    cover the point after the series."""
    return [
        {
            **label,
            "x": 1,
            "xshift": 6,
            "xanchor": "left",
            "align": "left",
            "text": label["text"].replace(" ", "<br>").replace("-", "-<br>"),
            "font": {**label["font"], "size": 10},
        }
        for label in phq9_band_labels()
    ]


def clinic_response_curve(points: Sequence[CurvePoint]) -> go.Figure | None:
    """Mean PHQ-9 (0-27) before each infusion of the series and after it, with the 95 %
    confidence band and the severity bands shaded. None below two points (no curve)."""
    if len(points) < 2:
        return None
    xs = _x_positions(points)
    figure = go.Figure(
        layout=base_layout(
            shapes=phq9_band_shapes(),
            annotations=_band_labels_outside(),
            # The legend above the plot, the band names in the right margin: below the
            # axis title the legend would collide with it on a phone.
            margin={"l": 48, "r": 66, "t": 36, "b": 48},
            legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        )
    )
    band_x, band_y = _band_outline(xs, points)
    if band_x:
        figure.add_trace(
            go.Scatter(
                x=band_x,
                y=band_y,
                name="95 % confidence band",
                fill="toself",
                fillcolor=BAND_FILL,
                line={"width": 0},
                mode="lines",
                hoverinfo="skip",
            )
        )
    figure.add_trace(
        go.Scatter(
            x=xs,
            y=[point.mean for point in points],
            name="Mean PHQ-9",
            mode="lines+markers",
            line={"color": PRIMARY, "width": 3},
            marker={
                "color": PRIMARY,
                "size": [12 if point.is_after else 9 for point in points],
                "symbol": ["diamond" if point.is_after else "circle" for point in points],
            },
            customdata=[
                [
                    point.label,
                    point.n,
                    "95 % CI not computed (fewer than 2 series)"
                    if point.ci_low is None
                    else f"95 % CI {_one_decimal(point.ci_low)} to {_one_decimal(point.ci_high)}",
                ]
                for point in points
            ],
            hovertemplate=(
                "<b>%{customdata[0]}</b><br>Mean PHQ-9 %{y:.1f}<br>%{customdata[2]}"
                "<br>n = %{customdata[1]} series<extra></extra>"
            ),
        )
    )
    figure.update_xaxes(
        title={"text": "Infusion in the series"},
        tickmode="array",
        tickvals=xs,
        ticktext=["After" if point.is_after else str(point.infusion) for point in points],
        range=[min(xs) - 0.5, max(xs) + 0.5],
        tickangle=0,
    )
    figure.update_yaxes(title={"text": "Mean PHQ-9"}, range=[0, MAX_TOTAL], tickvals=[0, 5, 10, 15, 20, 27])
    return figure


def response_curve_table(points: Sequence[CurvePoint]) -> tuple[list[str], list[list]]:
    headers = ["Point", "Series (n)", "Mean PHQ-9", "95 % CI lower", "95 % CI upper"]
    rows = [
        [
            point.label,
            point.n,
            _one_decimal(point.mean),
            _one_decimal(point.ci_low),
            _one_decimal(point.ci_high),
        ]
        for point in points
    ]
    return headers, rows


def response_curve_summary(points: Sequence[CurvePoint]) -> str:
    infusions = [point for point in points if not point.is_after]
    after = next((point for point in points if point.is_after), None)
    if len(points) < 2:
        return (
            "Not enough data to draw a curve yet: it needs PHQ-9 scores at two or more points of the "
            "series. Widen the filters, or look again after more infusions."
        )
    parts = []
    if infusions:
        first, last = infusions[0], infusions[-1]
        parts.append(
            f"Mean PHQ-9 was {_one_decimal(first.mean)} before infusion {first.infusion} (n = {first.n})"
            + (
                f" and {_one_decimal(last.mean)} before infusion {last.infusion} (n = {last.n})"
                if last is not first
                else ""
            )
        )
    if after is not None:
        parts.append(f"{_one_decimal(after.mean)} within {after_series_days()} days after the series (n = {after.n})")
    else:
        parts.append(f"no complete series has a PHQ-9 within {after_series_days()} days after its end yet")
    return "; ".join(parts) + "."


# --- Time from the end of induction to the first booster ----------------------------------


def booster_week_bins(days: Sequence[int]) -> list[tuple[int, int]]:
    """(whole weeks after induction, series), from the first week with a booster to the
    last, weeks without one included as 0."""
    if not days:
        return []
    weeks = Counter(value // DAYS_PER_WEEK for value in days)
    return [(week, weeks[week]) for week in range(min(weeks), max(weeks) + 1)]


def _week_label(week: int) -> str:
    first, last = week * DAYS_PER_WEEK, week * DAYS_PER_WEEK + DAYS_PER_WEEK - 1
    return f"{week} to {week + 1} weeks ({first}-{last} days)"


def time_to_first_booster(days: Sequence[int]) -> go.Figure | None:
    """Histogram of the days from the end of induction to the first booster, in weeks.
    None without any booster."""
    bins = booster_week_bins(days)
    if not bins:
        return None
    highest = max(count for _, count in bins)
    figure = go.Figure(
        go.Bar(
            # Each bar spans its whole week: [week, week + 1).
            x=[week + 0.5 for week, _ in bins],
            y=[count for _, count in bins],
            width=0.92,
            marker={"color": BOOSTER},
            customdata=[_week_label(week) for week, _ in bins],
            hovertemplate="%{customdata}<br>%{y} series<extra></extra>",
            name="Series",
        ),
        layout=base_layout(showlegend=False, bargap=0),
    )
    figure.update_xaxes(
        title={"text": "Weeks after the end of induction"},
        range=[0, bins[-1][0] + 1],
        tick0=0,
        dtick=1 if bins[-1][0] < 16 else 2,
    )
    step = max(1, -(-highest // 5))  # whole series, about five labels
    # No "0" label: it would sit on the x axis' own "0".
    figure.update_yaxes(title={"text": "Series"}, rangemode="tozero", tickvals=list(range(step, highest + 1, step)))
    return figure


def time_to_booster_table(days: Sequence[int]) -> tuple[list[str], list[list]]:
    headers = ["Time after induction", "Series"]
    return headers, [[_week_label(week), count] for week, count in booster_week_bins(days)]


def time_to_booster_summary(days: Sequence[int], complete: int) -> str:
    if not days:
        if not complete:
            return "No complete induction series matches these filters, so there is no booster timing to show."
        return f"None of the {complete} complete series has a booster given or booked yet."
    ordered = sorted(days)
    median = statistics.median(ordered)
    spread = f", from {ordered[0]} to {ordered[-1]} days" if len(ordered) > 1 else ""
    return (
        f"{len(days)} of {complete} complete series have a first booster given or booked; it came a median of "
        f"{median:g} days ({median / DAYS_PER_WEEK:.1f} weeks) after the last induction infusion{spread}."
    )
