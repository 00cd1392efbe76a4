"""The pages work under the Content-Security-Policy: no violation, no console error.

Each role walks its main pages in headless Chromium on the demo clinic. A script added
before any page script records every ``securitypolicyviolation`` event into the page;
the console is recorded too. A page passes when neither has anything to say and its
charts are drawn. Screenshots of the chart pages go to test-artifacts/ (csp-*.png).
"""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.core.management import call_command
from knox.models import AuthToken
from playwright.sync_api import expect

from clinic.staticfinders import _PACKAGE_DATA
from patients.models import Patient
from sessions.models import InfusionSession, SessionStatus
from tests.browser import log_in
from tests.conftest import ARTIFACTS
from tests.factories import UserFactory

DEMO_PASSWORD = "demo"
PLOTLY_CSS = Path(__file__).resolve().parent.parent / "static" / "css" / "plotly.css"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push({
    directive: event.effectiveDirective,
    blocked: event.blockedURI,
    source: event.sourceFile + ":" + event.lineNumber,
    sample: event.sample,
  });
}, true);
"""


class Watcher:
    """Everything the pages complained about: CSP violations and console errors/warnings."""

    def __init__(self, page):
        self.page = page
        self.console: list[str] = []
        page.context.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._on_console)

    def _on_console(self, message) -> None:
        if urlparse(message.location.get("url", "")).path == "/favicon.ico":
            return  # the browser asks for /favicon.ico on its own; the site has none (a 404)
        if message.type in ("error", "warning") or "Content Security Policy" in message.text:
            self.console.append(f"{message.type}: {message.text}")

    def check(self, what: str) -> None:
        """Nothing reported on the page shown now, once its requests have settled."""
        self.page.wait_for_load_state("networkidle")
        violations = self.page.evaluate("window.__cspViolations || []")
        console, self.console = self.console, []
        assert not violations, f"{what} ({self.page.url}): CSP violations {violations}"
        assert not console, f"{what} ({self.page.url}): console {console}"

    def visit(self, url: str, what: str) -> None:
        response = self.page.goto(url)
        assert response.ok, f"{what}: {url} answered {response.status}"
        assert "'unsafe-inline'" not in response.headers["content-security-policy"], what
        self.check(what)


@pytest.fixture
def demo(db):
    call_command("seed_demo", stdout=StringIO())


@pytest.fixture
def watch(page):
    return Watcher(page)


@pytest.fixture
def new_session(browser):
    """A browser of its own for each role (the demo clinic is loaded once for them all)."""
    contexts = []

    def open_one():
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        return page, Watcher(page)

    yield open_one
    for context in contexts:
        context.close()


def snap(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-1280.png"), full_page=True)


def charts_drawn(page, count: int) -> None:
    """Plotly drew every chart, laid out by css/plotly.css: its layers stacked (the
    main-svg is absolutely placed; without the file it is not) and the modebar in the
    plot's corner on hover."""
    plots = page.locator(".chart__plot")
    expect(plots).to_have_count(count)
    for index in range(count):
        plot = plots.nth(index)
        expect(plot.locator(".main-svg").first).to_be_visible()
        assert plot.locator(".main-svg").first.evaluate("svg => getComputedStyle(svg).position") == "absolute"
        plot.hover()
        modebar = plot.locator(".modebar")
        expect(modebar.locator(".modebar-group").first).to_have_css("opacity", "1")
        assert modebar.evaluate("bar => getComputedStyle(bar).position") == "absolute"


def clinician_pages(page, watch, url: str) -> None:
    watch.visit(f"{url}/accounts/login/", "login page")
    log_in(page, url, "clinician", DEMO_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Today's infusions")
    watch.check("today")

    infusion = InfusionSession.objects.filter(status=SessionStatus.COMPLETED).order_by("-scheduled_at").first()
    patient_url = f"{url}{infusion.patient.get_absolute_url()}"
    watch.visit(patient_url, "patient page")
    charts_drawn(page, 1)
    snap(page, "csp-patient-curve")
    page.locator(".chart").screenshot(path=str(ARTIFACTS / "csp-patient-curve-chart.png"))
    # The modebar's "Download plot as a PNG" draws the chart through a blob: image (img-src).
    with page.expect_download() as download:
        page.locator(".chart__plot").hover()
        page.locator('.chart__plot .modebar-btn[data-title^="Download plot"]').click()
    assert download.value.suggested_filename.endswith(".png")
    page.get_by_text("Show the data as a table").click()
    watch.check("patient page, chart used")

    watch.visit(f"{url}/infusions/{infusion.pk}/", "infusion log")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Infusion log")
    watch.visit(f"{url}/patients/", "patient list")
    watch.visit(f"{url}/infusions/calendar/", "calendar")
    watch.visit(f"{url}/maintenance/inbox/", "inbox")

    # The PHQ-9 form: clinic.js adds up the answers as they are given.
    watch.visit(f"{patient_url}phq9/new/", "PHQ-9 form")
    for number in range(1, 10):
        page.locator(f"#id_item_{number}_1").check()
    expect(page.locator("[data-phq9-total]")).to_have_text("9")
    watch.check("PHQ-9 form, answered")

    watch.visit(f"{url}/infusions/outcomes/", "outcomes")
    charts_drawn(page, 2)
    page.locator('[data-chart="response-curve"]').hover()
    snap(page, "csp-outcomes")
    page.locator(".chart").first.screenshot(path=str(ARTIFACTS / "csp-outcomes-chart.png"))
    watch.check("outcomes, charts used")


def scheduler_pages(page, watch, url: str) -> None:
    log_in(page, url, "scheduler", DEMO_PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Booster board")
    watch.check("booster board")
    patient = Patient.objects.filter(maintenance_plan__isnull=False).first()
    watch.visit(f"{url}/maintenance/patients/{patient.pk}/plan/", "maintenance plan")
    watch.visit(f"{url}/maintenance/patients/{patient.pk}/boosters/new/", "book a booster")
    watch.visit(f"{url}/infusions/calendar/", "calendar")
    watch.visit(f"{url}/patients/{patient.pk}/", "patient page")
    charts_drawn(page, 1)


def patient_pages(page, watch, url: str) -> None:
    log_in(page, url, "patient", DEMO_PASSWORD)
    expect(page.get_by_role("heading", name="Hello, Jordan")).to_be_visible()
    charts_drawn(page, 1)
    snap(page, "csp-portal")
    watch.check("portal")
    watch.visit(f"{url}/portal/help/", "crisis help")
    watch.visit(f"{url}/portal/questionnaire/", "portal questionnaire")
    page.locator("#id_item_9_1").check()
    expect(page.locator("[data-phq9-safety]")).to_be_visible()  # clinic.js shows the crisis lines
    watch.check("portal questionnaire, item 9 answered")


def admin_pages(page, watch, url: str) -> None:
    watch.visit(f"{url}/admin/login/", "admin login")
    log_in(page, url, "admin", DEMO_PASSWORD, admin=True)
    expect(page.locator("#site-name")).to_be_visible()
    watch.check("admin index")
    watch.visit(f"{url}/admin/patients/patient/", "admin patient list")
    page.locator("#result_list tbody tr").first.get_by_role("link").first.click()
    expect(page.locator("input[name=mrn]")).to_be_visible()
    watch.check("admin patient change form")
    # The widgets' own scripts: the calendar and the autocomplete (select2) drop-down.
    page.locator("#calendarlink0").click()
    expect(page.locator("#calendarbox0")).to_be_visible()
    page.locator(".field-primary_clinician .select2-selection").click()
    expect(page.locator(".select2-results__option").first).to_be_visible()
    snap(page, "csp-admin-change-form")
    watch.check("admin widgets")
    watch.visit(f"{url}/admin/infusions/infusionsession/", "admin infusion list")
    watch.visit(f"{url}/admin/auth/user/add/", "admin add user")


def test_each_roles_pages_work_under_the_policy(new_session, live_server, demo):
    """One demo clinic, four browsers: the clinician's, the scheduler's, the patient's
    and the superuser's (a failure names the role's page and what it reported)."""
    for walk in (clinician_pages, scheduler_pages, patient_pages, admin_pages):
        page, watch = new_session()
        walk(page, watch, live_server.url)


def test_the_api_docs_work_under_the_policy(page, watch, live_server, db):
    """Swagger UI loads, authorises and makes a call (connect-src 'self'), with no violation."""
    token = AuthToken.objects.create(user=UserFactory(username="dr_docs", role="clinician"))[1]
    watch.visit(f"{live_server.url}/api/docs/", "API docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Ketamine clinic API")
    page.get_by_role("button", name="Authorize").click()
    dialog = page.locator(".dialog-ux")
    knox = dialog.locator(".auth-container").filter(has_text="knoxApiToken")
    knox.locator("input").fill(f"Token {token}")
    knox.get_by_role("button", name="Apply credentials").click()
    dialog.get_by_role("button", name="Close").first.click()
    page.locator("#operations-patients-patients_list").click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    response = page.locator("#operations-patients-patients_list .responses-table.live-responses-table")
    expect(response.locator("tbody .response-col_status").first).to_have_text("200")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "csp-api-docs-1280.png"))  # the window, not the whole page
    watch.check("API docs, used")


def test_the_shipped_plotly_css_is_what_the_pinned_plotly_js_would_inject(page):
    """static/css/plotly.css is a copy of the rules plotly.js inserts at load: the same
    rules in the same order, or the modebar and the plot's layers look wrong after an
    upgrade of plotly. On a difference the new file is written to test-artifacts/."""
    page.set_content("<!doctype html><html><head></head><body></body></html>")  # no policy here
    page.evaluate(
        """() => {
        window.__rules = [];
        const insertRule = CSSStyleSheet.prototype.insertRule;
        CSSStyleSheet.prototype.insertRule = function (rule, index) {
          if (this.ownerNode && this.ownerNode.id === "plotly.js-style-global") window.__rules.unshift(rule);
          return insertRule.call(this, rule, index);
        };
      }"""
    )
    page.add_script_tag(path=str(_PACKAGE_DATA / "plotly.min.js"))
    injected = page.evaluate("window.__rules")  # in the order of the sheet (each went in at the top)
    assert len(injected) > 20
    text = PLOTLY_CSS.read_text()
    header = text[: text.index("*/") + 3]
    shipped = [line for line in text[len(header) :].splitlines() if line.strip()]
    if shipped != injected:
        version = page.evaluate("Plotly.version")
        ARTIFACTS.mkdir(exist_ok=True)
        fresh = ARTIFACTS / "plotly.css"
        fresh.write_text(re.sub(r"plotly\.js [\d.]+'s", f"plotly.js {version}'s", header) + "\n".join(injected) + "\n")
        pytest.fail(f"static/css/plotly.css differs from plotly.js {version}'s rules: copy {fresh} over it.")
