"""The Content-Security-Policy: every HTML page carries it, for every role, and says what it should.

The walk takes every URL pattern from Django's URL resolver (so a new page cannot escape),
fills its arguments with real records, and GETs it as anonymous, as a user of each role
and as a superuser. Every HTML answer (pages, redirects, refusals, error pages) must carry
the site's policy, exactly, unless the page is in EXCEPTIONS with its reason; a page
rendered in full must also hold no inline script or style the policy would refuse. The
browser side (the pages really run under it) is tests/test_browser_csp.py.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import transaction
from django.template.loader import render_to_string
from django.test import Client
from django.urls import URLResolver, get_resolver, resolve, reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.regex_helper import normalize

from clinic.staticfinders import _PACKAGE_DATA
from maintenance.models import Notification, NotificationKind
from patients.access import Role
from patients.models import Patient
from sessions.models import InductionSeries, InfusionSession, SessionKind
from sessions.scheduling import clinic_datetime
from tests.factories import MaintenancePlanFactory, PHQ9Factory, UserFactory

HEADER = "Content-Security-Policy"

#: The only pages whose policy differs from the site's, each with what it adds and why.
#: None may add 'unsafe-inline' or 'unsafe-eval' to script-src or style-src.
EXCEPTIONS: dict[str, tuple[dict[str, list[str]], str]] = {
    "api:docs": ({"img-src": ["data:"]}, "Swagger UI's stylesheet draws its icons as data: SVG images"),
}

#: Which record a URL's ``pk`` is, by URL name (API routes: by the viewset's basename).
PK_RECORD = {
    "patients:detail": "patient",
    "patients:edit": "patient",
    "patients:invite": "patient",
    "patients:phq9_new": "patient",
    "patients:phq9_acknowledge": "phq9",
    "infusions:series_new": "patient",
    "infusions:makeup": "series",
    "infusions:series_discontinue": "series",
    **{
        f"infusions:{name}": "infusion"
        for name in ("detail", "start", "vitals", "side_effect", "complete", "discharge", "sign", "amend", "move")
    },
    "infusions:cancel": "infusion",
    "maintenance:booster_new": "patient",
    "maintenance:plan_edit": "patient",
    "maintenance:notification_read": "notification",
}
PK_RECORD_API = {
    "patient": "patient",
    "phq9": "phq9",
    "protocol": "protocol",
    "series": "series",
    "infusion": "infusion",
    "booster": "booster",
    "maintenance-plan": "plan",
    "notification": "notification",
}


# --- The policy itself ------------------------------------------------------------------------


def parse(header: str) -> dict[str, set[str]]:
    directives = {}
    for part in header.split(";"):
        if part.strip():
            name, *sources = part.split()
            directives[name] = set(sources)
    return directives


def site_policy() -> dict[str, set[str]]:
    return {name: set(sources) for name, sources in settings.CONTENT_SECURITY_POLICY["DIRECTIVES"].items()}


def expected_policy(url_name: str | None) -> dict[str, set[str]]:
    policy = site_policy()
    extra, _reason = EXCEPTIONS.get(url_name, ({}, ""))
    for name, sources in extra.items():
        policy[name] = policy.get(name, set()) | set(sources)
    return policy


def test_the_site_policy_allows_only_the_sites_own_files():
    policy = site_policy()
    assert policy["default-src"] == {"'self'"}
    assert policy["script-src"] == {"'self'"}
    assert policy["style-src"] == {"'self'"}
    assert policy["font-src"] == {"'self'"}
    assert policy["connect-src"] == {"'self'"}
    assert policy["img-src"] == {"'self'", "blob:"}  # blob: Plotly's "Download plot as a PNG"
    assert policy["object-src"] == {"'none'"}
    assert policy["base-uri"] == {"'none'"}
    assert policy["form-action"] == {"'self'"}
    assert policy["frame-ancestors"] == {"'none'"}
    assert "csp.middleware.CSPMiddleware" in settings.MIDDLEWARE


def test_no_exception_allows_inline_code_or_eval():
    for url_name, (extra, reason) in EXCEPTIONS.items():
        assert reason, url_name
        for name, sources in extra.items():
            assert not {"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'"} & set(sources), (url_name, name)
        assert not {"script-src", "script-src-elem", "script-src-attr"} & set(extra), url_name


def test_every_exception_is_a_page_that_exists():
    names = {page.name for page in pages()}
    assert set(EXCEPTIONS) <= names, set(EXCEPTIONS) - names


# --- Every page ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    regex: str  # the whole path's pattern, as Django reverses it
    name: str | None  # "namespace:name"
    callback: Any

    @property
    def label(self) -> str:
        return self.name or self.regex


def pages(patterns=None, prefix: str = "", namespaces: tuple[str, ...] = ()) -> list[Page]:
    """Every URL pattern of the project, from the resolver (including the admin's)."""
    found = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        regex = pattern.pattern.regex.pattern.removeprefix("^")
        if isinstance(pattern, URLResolver):
            inner = (*namespaces, pattern.namespace) if pattern.namespace else namespaces
            found += pages(pattern.url_patterns, prefix + regex, inner)
        else:
            name = ":".join((*namespaces, pattern.name)) if pattern.name else None
            found.append(Page(prefix + regex, name, pattern.callback))
    return found


def model_of(page: Page):
    """The model of an admin page: ModelAdmin views carry their ModelAdmin, and every
    admin page of a model is named admin:<app label>_<model name>_<what>."""
    model_admin = getattr(page.callback, "model_admin", None)
    if model_admin:
        return model_admin.model
    for model in admin.site._registry:
        if page.name and page.name.startswith(f"admin:{model._meta.app_label}_{model._meta.model_name}_"):
            return model
    return None


def argument(page: Page, param: str, world: dict) -> str:
    """A real value for one URL argument; a new kind of argument needs a line here."""
    records = world["records"]
    model = model_of(page)
    if param == "pk" and page.name in PK_RECORD:
        return str(records[PK_RECORD[page.name]].pk)
    if param == "pk" and page.name and page.name.startswith("api:"):
        return str(records[PK_RECORD_API[page.callback.initkwargs["basename"]]].pk)
    if param in ("object_id", "id", "pk") and model is not None:
        record = model._default_manager.order_by("pk").first()
        # A model with no row yet: the admin answers "does not exist" (a redirect), still checked.
        return str(record.pk) if record else "0"
    if param == "object_id":  # the admin's "view on site" shortcut
        return str(records["patient"].pk)
    if param == "content_type_id":
        return str(ContentType.objects.get_for_model(Patient).pk)
    if param == "app_label":
        return "patients"
    if param == "url":  # the admin's catch-all: a page that does not exist
        return "no-such-page/"
    if param == "uidb64":
        return urlsafe_base64_encode(force_bytes(records["patient"].user.pk))
    if param == "token":
        return default_token_generator.make_token(records["patient"].user)
    raise AssertionError(f"{page.label}: no value for the URL argument {param!r}: add one to argument()")


def path_of(page: Page, world: dict) -> str:
    template, params = normalize(page.regex)[0]
    return "/" + template % {param: argument(page, param, world) for param in params}


def paths_to_walk(world: dict) -> dict[str, str]:
    """Every page's path, each once, with the name of the view that answers it (a pattern
    shadowed by an earlier one for the same path, as two-factor's own "login" is by the
    site's, is walked as the page that answers)."""
    paths = {}
    for page in pages():
        path = path_of(page, world)
        paths[path] = resolve(path).view_name
    return paths


class InlineCode(HTMLParser):
    """What a strict policy refuses in a page's HTML: inline scripts (a <script> without
    src that is not JSON data), <style> elements, style="" and on*="" attributes, and
    javascript: addresses."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and not attributes.get("src") and attributes.get("type") != "application/json":
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style> element")
        for name, value in attributes.items():
            if name == "style":
                self.found.append(f'style="{value}" on <{tag}>')
            elif name.startswith("on"):
                self.found.append(f"{name}= handler on <{tag}>")
            elif value and value.strip().lower().startswith("javascript:"):
                self.found.append(f"javascript: address on <{tag}>")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


@pytest.fixture
def world(clinician, scheduler, superuser, patient, protocol):
    """A user of every role, and patient A's records: a series with an infusion, a
    booster, a PHQ-9, a maintenance plan and a notification for the clinician."""
    auditor = UserFactory(username="audrey_auditor", role=Role.AUDITOR.value) if hasattr(Role, "AUDITOR") else None
    start = timezone.localdate() + dt.timedelta(days=3)
    series = InductionSeries.objects.create(
        patient=patient, protocol=protocol, planned_infusions=6, infusions_per_week=2, start_date=start
    )
    infusion = InfusionSession.objects.create(
        patient=patient,
        series=series,
        kind=SessionKind.INDUCTION,
        scheduled_at=clinic_datetime(start, dt.time(9)),
        route=protocol.route,
        drug=protocol.drug,
        dose_mg_per_kg=protocol.dose,
    )
    booster = InfusionSession.objects.create(
        patient=patient,
        kind=SessionKind.BOOSTER,
        scheduled_at=clinic_datetime(start + dt.timedelta(days=28), dt.time(9)),
        route=protocol.route,
        drug=protocol.drug,
        dose_mg_per_kg=protocol.dose,
    )
    users = {
        "anonymous": None,
        Role.PATIENT.value: patient.user,
        Role.CLINICIAN.value: clinician,
        Role.SCHEDULER.value: scheduler,
        "superuser": superuser,
    }
    if auditor:
        users[Role.AUDITOR.value] = auditor
    assert set(Role) <= set(users), f"a role without a user in this walk: {set(Role) - set(users)}"
    return {
        "users": users,
        "records": {
            "patient": patient,
            "phq9": PHQ9Factory(patient=patient, item_9=1),
            "protocol": protocol,
            "series": series,
            "infusion": infusion,
            "booster": booster,
            "plan": MaintenancePlanFactory(patient=patient, protocol=protocol),
            "notification": Notification.objects.create(
                recipient=clinician, kind=NotificationKind.SAFETY_ALERT, title="Safety alert", patient=patient
            ),
        },
    }


def get(client: Client, path: str):
    """One GET, with anything it wrote rolled back (every request sees the same records)."""
    with transaction.atomic():
        response = client.get(path)
        transaction.set_rollback(True)
    return response


def is_html(response) -> bool:
    return response.get("Content-Type", "").startswith("text/html")


def check(response, url_name: str | None, where: str) -> list[str]:
    """What is wrong with one answer's policy (and, for a page rendered in full, its HTML)."""
    if not is_html(response):
        return []  # JSON, CSV, images: no policy needed (they carry it all the same)
    if HEADER not in response:
        return [f"{where}: no {HEADER} header"]
    policy = parse(response[HEADER])
    problems = []
    for name in ("script-src", "style-src"):
        if {"'unsafe-inline'", "'unsafe-eval'"} & policy.get(name, set()):
            problems.append(f"{where}: {name} {' '.join(sorted(policy[name]))}")
    if policy != expected_policy(url_name):
        problems.append(f"{where}: the policy is {response[HEADER]!r}")
    if response.status_code == 200 and not response.streaming:
        problems += [f"{where}: {what}" for what in inline_code(response.content.decode())]
    return problems


@pytest.mark.django_db
def test_every_page_carries_the_policy_for_every_role(world):
    paths = paths_to_walk(world)
    assert len(paths) > 100  # the clinic's pages, the API and the admin's
    problems, rendered = [], set()
    for role, user in world["users"].items():
        client = Client()
        if user is not None:
            client.force_login(user)
        for path, view_name in paths.items():
            response = get(client, path)
            problems += check(response, view_name, f"{role} GET {path} ({view_name}, {response.status_code})")
            if response.status_code == 200 and is_html(response):
                rendered.add(view_name)
    assert not problems, "\n".join(problems)
    # The walk reached the pages themselves, not only the login redirects.
    assert {
        "login",
        "infusions:today",
        "infusions:outcomes",
        "patients:detail",
        "infusions:detail",
        "maintenance:board",
        "portal:home",
        "portal:welcome",
        "admin:index",
        "admin:patients_patient_change",
        "api:docs",
    } <= rendered


# --- Error pages and other answers -----------------------------------------------------------------


def assert_site_policy(response, url_name: str | None = None) -> None:
    assert is_html(response)
    assert HEADER in response
    assert parse(response[HEADER]) == expected_policy(url_name)
    assert not inline_code(response.content.decode())


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["anonymous", "patient", "clinician", "superuser"])
def test_the_not_found_page_carries_the_policy(world, role, client):
    if world["users"][role]:
        client.force_login(world["users"][role])
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert_site_policy(response)


@pytest.mark.django_db
def test_the_refusal_page_carries_the_policy(world, client):
    client.force_login(world["users"]["patient"])
    response = client.get("/patients/")
    assert response.status_code == 403
    assert_site_policy(response)


@pytest.mark.django_db
def test_the_server_error_page_carries_the_policy(clinician, monkeypatch):
    from patients import access

    def broken(user):
        raise RuntimeError("a bug")

    monkeypatch.setattr(access, "is_clinician", broken)  # clinic.views.home asks it first
    client = Client(raise_request_exception=False)
    client.force_login(clinician)
    response = client.get("/")
    assert response.status_code == 500
    assert_site_policy(response)


@pytest.mark.django_db
def test_the_csrf_failure_page_carries_the_policy_and_no_inline_style(clinician):
    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician)
    response = client.post("/accounts/logout/")
    assert response.status_code == 403
    assert_site_policy(response)
    assert b"This form was not sent" in response.content  # templates/403_csrf.html, not Django's


@pytest.mark.django_db
def test_the_lockout_page_carries_the_policy(clinician, client):
    cache.clear()  # throttle counts
    answers = [
        client.post(reverse("login"), {"login_view-current_step": "auth", "username": "dr_lee", "password": "guess"})
        for _attempt in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert answers[-1].status_code == 429  # django-axes' lockout page (clinic.views.locked_out)
    assert_site_policy(answers[-1])
    assert_site_policy(answers[0])  # the login form again, with its error


@pytest.mark.django_db
def test_json_api_answers_carry_it_too(clinician, client):
    """Not needed by a JSON answer, but the middleware leaves nothing out."""
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert parse(response[HEADER]) == site_policy()


# --- plotly.js under the policy -------------------------------------------------------------


def test_the_chart_pages_pre_empt_every_style_element_plotly_would_inject():
    """plotly.js injects a <style> at load unless an element with its id is in the page;
    templates/includes/chart_scripts.html provides each one. A plotly upgrade that adds or
    renames one fails here (and, in a browser, as a violation)."""
    source = (_PACKAGE_DATA / "plotly.min.js").read_text()
    injected = set(
        re.findall(r'getElementById\("([0-9a-f]{64})"\)\)\{var \w+=document\.createElement\("style"\)', source)
    )
    assert injected, "the pattern no longer finds plotly.js's injected styles: look again"
    assert '"plotly.js-style-"+' in source  # the global rules' element: plotly.js-style-global
    assert '.matches(".no-inline-styles")' in source  # ... which it leaves alone when so marked
    html = render_to_string("includes/chart_scripts.html")
    for element_id in injected:
        assert f'id="{element_id}"' in html
    assert re.search(
        r'<link rel="stylesheet" id="plotly.js-style-global" class="no-inline-styles" href="[^"]+/css/plotly\.css">',
        html,
    )
    assert (Path(settings.BASE_DIR) / "static" / "css" / "plotly.css").is_file()
