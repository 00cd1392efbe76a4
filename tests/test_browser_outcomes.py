"""A clinician opens the clinic's outcomes on the demo clinic: the curve and the booster
histogram are drawn by Plotly, the filters work, and the page reads at phone width."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from tests.browser import log_in

DEMO_PASSWORD = "demo"

# The live server reads in its own thread, so these tests commit (and the database is
# flushed after each).
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def curve_points(page):
    """The markers of the mean line (the confidence band has none)."""
    return page.locator('[data-chart="response-curve"] .scatterlayer .points path')


def wait_for_charts(page) -> None:
    expect(page.locator('[data-chart="response-curve"] .main-svg').first).to_be_visible()
    expect(page.locator('[data-chart="time-to-booster"] .main-svg').first).to_be_visible()


def at_phone_width(page, screenshot, name: str) -> None:
    """Narrow the window: the charts redraw to fit it (Plotly's responsive resize), then
    the screenshot; back to desktop width after."""
    page.set_viewport_size({"width": 390, "height": 860})
    page.wait_for_function(
        "() => [...document.querySelectorAll('.chart__plot .main-svg')]"
        ".every(svg => svg.getBoundingClientRect().right <= window.innerWidth)"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
    screenshot(name, width=390)
    page.set_viewport_size({"width": 1280, "height": 860})


def test_a_clinician_reads_the_clinic_outcomes_on_the_demo_clinic(page, live_server, screenshot):
    call_command("seed_demo", stdout=StringIO())
    log_in(page, live_server, "clinician", DEMO_PASSWORD)

    page.get_by_role("link", name="Outcomes").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Clinic outcomes")
    wait_for_charts(page)
    assert curve_points(page).count() >= 6  # infusions 1-6 at least
    expect(page.locator("#response-curve-summary")).to_contain_text("before infusion 1")
    expect(page.locator('[data-chart="time-to-booster"] .bars path').first).to_be_visible()
    expect(page.locator("#time-to-booster-summary")).to_contain_text("complete series have a first booster")
    screenshot("outcomes-demo")
    at_phone_width(page, screenshot, "outcomes-demo")

    # The demo's follow-up scores a week after each series give the "After" point and the shares.
    expect(page.locator("#response-share")).to_have_text(re.compile(r"^\d+ of \d+ series \(\d+ %\) in response$"))
    expect(page.locator("#remission-share")).to_have_text(re.compile(r"^\d+ of \d+ series \(\d+ %\) in remission$"))
    expect(page.locator('[data-chart="response-curve"] .xtick text', has_text="After")).to_have_count(1)
    with_everyone = curve_points(page).count()
    screenshot("outcomes")
    at_phone_width(page, screenshot, "outcomes")

    # The text alternative: the table behind the curve.
    page.locator("#response-curve-title").locator("xpath=ancestor::figure").get_by_text(
        "Show the data as a table"
    ).click()
    expect(page.get_by_role("cell", name="After the series")).to_be_visible()

    # Filter to the eight-infusion protocol: the form keeps the choice, the curve redraws.
    page.get_by_label("Protocol").select_option(label="IV ketamine, 8 infusions three times weekly")
    page.get_by_label("Series started from").fill("2020-01-01")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"protocol=[0-9a-f-]{36}.*started_from=2020-01-01"))
    expect(page.get_by_label("Protocol")).to_have_value(re.compile(r"[0-9a-f-]{36}"))
    expect(page.get_by_label("Series started from")).to_have_value("2020-01-01")
    wait_for_charts(page)
    expect(page.locator('[data-chart="response-curve"] .xtick text', has_text="8")).to_have_count(1)
    assert 2 <= curve_points(page).count() <= with_everyone
    expect(page.get_by_role("link", name="Clear filters")).to_be_visible()
    with page.expect_download() as download:
        page.locator("#response-curve-title").locator("xpath=ancestor::figure").get_by_role(
            "link", name="Download the data (CSV)"
        ).click()
    assert download.value.suggested_filename.startswith("outcomes-response-curve-")
    screenshot("outcomes-filtered")

    # A date typed wrong in the address: the message is next to the field, nothing breaks.
    page.goto(f"{live_server.url}/infusions/outcomes/?started_from=2026-02-30")
    expect(page.locator(".field--invalid")).to_contain_text("Enter a valid date.")
    expect(page.locator(".chart")).to_have_count(0)
    screenshot("outcomes-invalid", width=390)
