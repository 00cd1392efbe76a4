"""What every chart shares: layout, colours, the severity bands, and how a chart reaches a page.

Each chart is one pure function (``patients/charts.py``, ``sessions/charts.py``) that takes
data and returns a Plotly figure; a view wraps it in a ``Chart`` with its text
alternative (a summary and the table behind it) and a CSV download. Pages render charts
with ``templates/includes/chart.html`` and the one static script ``static/js/charts.js``:
no inline scripts.
"""

from __future__ import annotations

import csv
import functools
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go
import plotly.io as pio
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from patients.phq9 import SEVERITY_BANDS, Severity

FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica Neue, Arial, sans-serif"
INK = "#1b1f24"
PRIMARY = "#0d5c6e"
BOOSTER = "#7a4ea3"
ALERT = "#b42318"
MUTED = "#56606b"

#: Background shading of the PHQ-9 bands, light enough to read the line over it.
BAND_COLOURS: dict[Severity, str] = {
    Severity.NONE_MINIMAL: "rgba(20, 83, 45, 0.10)",
    Severity.MILD: "rgba(18, 61, 102, 0.08)",
    Severity.MODERATE: "rgba(107, 69, 0, 0.10)",
    Severity.MODERATELY_SEVERE: "rgba(138, 28, 18, 0.09)",
    Severity.SEVERE: "rgba(138, 28, 18, 0.16)",
}


def base_layout(**overrides) -> dict:
    layout = {
        "font": {"family": FONT, "color": INK, "size": 13},
        "margin": {"l": 56, "r": 16, "t": 16, "b": 48},
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.18},
        "xaxis": {"gridcolor": "#eef1f4", "zeroline": False},
        "yaxis": {"gridcolor": "#eef1f4", "zeroline": False},
    }
    layout.update(overrides)
    return layout


def phq9_band_shapes() -> list[dict]:
    """The five PHQ-9 bands as shaded horizontal strips across the plot (y from 0 to 27)."""
    shapes = []
    for low, high, band in SEVERITY_BANDS:
        shapes.append(
            {
                "type": "rect",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": low - 0.5 if low else 0,
                "y1": high + 0.5 if high < 27 else 27,
                "fillcolor": BAND_COLOURS[band],
                "line": {"width": 0},
                "layer": "below",
            }
        )
    return shapes


def phq9_band_labels() -> list[dict]:
    return [
        {
            "xref": "paper",
            "x": 1,
            "xanchor": "right",
            "y": (low + high) / 2,
            "text": band.label,
            "showarrow": False,
            "font": {"size": 11, "color": MUTED},
        }
        for low, high, band in SEVERITY_BANDS
    ]


@functools.cache
def _template_json(name: str | None) -> dict:
    """Plotly's default template as ``to_json()`` writes it into every figure (constant)."""
    return json.loads(go.Figure().to_json())["layout"].get("template", {})


def figure_json(spec: dict) -> dict:
    """A figure dict in plotly's own form (``data`` and ``layout``, as plotly validates
    them) as ``go.Figure(spec).to_json()`` writes it: with the default template, built
    without constructing and validating a plotly figure."""
    layout = dict(spec.get("layout", {}))
    template = _template_json(pio.templates.default)
    if template and "template" not in layout:
        layout["template"] = template
    return {"data": spec.get("data", []), "layout": layout}


@dataclass
class Chart:
    """A figure and its text alternative, ready for ``includes/chart.html``."""

    id: str
    title: str
    #: A plotly figure, or a figure dict in plotly's own form (see ``figure_json``).
    figure: go.Figure | dict | None
    #: One or two plain sentences saying what the chart shows.
    summary: str
    headers: Sequence[str] = ()
    rows: Sequence[Sequence] = field(default_factory=list)
    csv_url: str = ""

    @property
    def figure_json(self) -> dict | None:
        if self.figure is None:
            return None
        if isinstance(self.figure, dict):
            return figure_json(self.figure)
        # Through plotly's own encoder: dates, numbers and arrays come out as plain JSON.
        return json.loads(self.figure.to_json())

    @property
    def figure_script(self) -> SafeString:
        """``{{ chart.figure_json|json_script:chart.id }}``, with the escapes as replaces
        (``str.translate`` with a mapping goes character by character; a patient's years of
        scores make a long figure)."""
        text = json.dumps(self.figure_json, cls=DjangoJSONEncoder)
        text = text.replace(">", "\\u003E").replace("<", "\\u003C").replace("&", "\\u0026")
        return format_html('<script id="{}" type="application/json">{}</script>', self.id, mark_safe(text))

    @property
    def rows_html(self) -> SafeString:
        """The table's body rows, each cell escaped (``<tr><td>...</td></tr>``): put together
        here rather than cell by cell in the template."""
        return mark_safe(
            "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in self.rows
            )
        )


def csv_response(filename: str, headers: Sequence[str], rows: Sequence[Sequence]) -> HttpResponse:
    """The table behind a chart as a CSV download."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(headers)
    writer.writerows(rows)
    return response
