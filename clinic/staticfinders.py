"""Serve plotly.js from the installed plotly package (no CDN, no copy that can drift).

The file is found as ``vendor/plotly.min.js``; ``collectstatic`` copies it into
STATIC_ROOT like any other static file, so production serves it with whitenoise.
"""

from __future__ import annotations

from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_JS = "vendor/plotly.min.js"
_PACKAGE_DATA = Path(plotly.__file__).resolve().parent / "package_data"


class PlotlyFinder(BaseFinder):
    storage = FileSystemStorage(location=str(_PACKAGE_DATA))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.storage.prefix = "vendor"

    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        if path == PLOTLY_JS:
            match = str(_PACKAGE_DATA / "plotly.min.js")
            return [match] if find_all else match
        return [] if find_all else None

    def list(self, ignore_patterns):
        yield "plotly.min.js", self.storage
