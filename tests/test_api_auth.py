"""Logging in to the API: hashed tokens that expire, logout, 401s for strangers, CSRF for
browser sessions, a throttled token endpoint, no caching, and a schema and docs page
that work offline."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.apps import apps
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from knox.models import get_token_model
from rest_framework.test import APIClient

from patients.models import PHQ9Assessment
from tests.factories import PASSWORD, UserFactory

NEW_YORK = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 11, 23, 8, 0, tzinfo=NEW_YORK)  # a Monday in winter (UTC-05:00)
API = "/api/v1"
TOKEN_URL = f"{API}/auth/token/"
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?[+-]\d{2}:\d{2}$")
BAD_CREDENTIALS = {"non_field_errors": ["Unable to log in with provided credentials."]}

AuthToken = get_token_model()


@pytest.fixture(autouse=True)
def empty_cache():
    """The throttle counts live in the shared cache: start and leave it empty."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def log_in(username: str, password: str = PASSWORD, client: APIClient | None = None, **extra):
    return (client or APIClient()).post(TOKEN_URL, {"username": username, "password": password}, **extra)


def token_for(username: str) -> str:
    response = log_in(username)
    assert response.status_code == 200, response.content
    return response.json()["token"]


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


# --- 1. The token endpoint -------------------------------------------------------------------


@pytest.mark.django_db
def test_it_exchanges_a_username_and_password_for_a_token_that_expires(clinician):
    response = log_in("dr_lee")
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["token"]) >= 32
    assert ISO_WITH_OFFSET.match(body["expiry"])
    assert body["expiry"] == "2026-11-23T18:00:00-05:00"  # CLINIC_API_TOKEN_HOURS (10) from now
    assert dt.datetime.fromisoformat(body["expiry"]) == NOW + dt.timedelta(hours=settings.CLINIC_API_TOKEN_HOURS)
    assert body["user"]["role"] == "clinician"
    assert body["user"]["username"] == "dr_lee"
    assert body["user"]["patient"] is None
    assert AuthToken.objects.filter(user=clinician).count() == 1


@pytest.mark.django_db
def test_a_patients_token_says_which_record_is_theirs(patient):
    body = log_in(patient.user.username).json()
    assert body["user"]["role"] == "patient"
    assert body["user"]["patient"] == str(patient.pk)


@pytest.mark.django_db
def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(clinician):
    wrong_password = log_in("dr_lee", "not the password")
    unknown_user = log_in("nobody_here", "not the password")

    assert wrong_password.status_code == unknown_user.status_code == 400
    assert wrong_password.json() == unknown_user.json() == BAD_CREDENTIALS
    assert not AuthToken.objects.exists()


@pytest.mark.django_db
def test_an_inactive_user_gets_no_token():
    UserFactory(username="left_the_clinic", role="clinician", is_active=False)
    response = log_in("left_the_clinic")
    assert response.status_code == 400
    assert response.json() == BAD_CREDENTIALS
    assert not AuthToken.objects.exists()


@pytest.mark.django_db
def test_a_user_without_a_clinic_role_gets_no_token():
    UserFactory(username="no_role")
    response = log_in("no_role")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["This account has no clinic role."]}
    assert not AuthToken.objects.exists()


@pytest.mark.django_db
def test_a_superuser_without_a_group_gets_a_token(superuser):
    assert log_in("root").json()["user"]["role"] == "superuser"


# --- 2. Using, expiring and revoking a token -----------------------------------------------------


@pytest.mark.django_db
def test_the_token_authenticates_as_its_user(clinician):
    me = with_token(token_for("dr_lee")).get(f"{API}/me/")
    assert me.status_code == 200, me.content
    assert me.json()["username"] == "dr_lee"
    assert me.json()["role"] == "clinician"


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Token not-a-real-token", "Bearer {token}", "Token", "Token {token} extra"])
def test_a_malformed_or_unknown_token_is_refused(clinician, header):
    token = token_for("dr_lee")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.format(token=token))
    assert client.get(f"{API}/me/").status_code == 401


@pytest.mark.django_db
def test_a_token_expires_after_the_configured_hours(clinician, clock):
    client = with_token(token_for("dr_lee"))
    clock.move_to(NOW + dt.timedelta(hours=settings.CLINIC_API_TOKEN_HOURS) - dt.timedelta(minutes=1))
    assert client.get(f"{API}/me/").status_code == 200

    clock.move_to(NOW + dt.timedelta(hours=settings.CLINIC_API_TOKEN_HOURS, minutes=1))
    response = client.get(f"{API}/me/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert log_in("dr_lee").status_code == 200  # a new login gives a new token


@pytest.mark.django_db
def test_a_deactivated_users_token_stops_working(clinician):
    client = with_token(token_for("dr_lee"))
    clinician.is_active = False
    clinician.save(update_fields=["is_active"])
    assert client.get(f"{API}/me/").status_code == 401
    assert client.get(f"{API}/patients/").status_code == 401


@pytest.mark.django_db
def test_logging_out_revokes_only_that_token(clinician):
    kept = token_for("dr_lee")
    revoked = token_for("dr_lee")
    client = with_token(revoked)

    response = client.post(f"{API}/auth/logout/")
    assert response.status_code == 204, response.content

    assert client.get(f"{API}/me/").status_code == 401
    assert client.post(f"{API}/auth/logout/").status_code == 401
    assert with_token(kept).get(f"{API}/me/").status_code == 200
    assert AuthToken.objects.filter(user=clinician).count() == 1


@pytest.mark.django_db
def test_logging_out_needs_a_token_not_a_session(clinician):
    client = APIClient()
    client.force_login(clinician)
    response = client.post(f"{API}/auth/logout/")
    assert response.status_code == 400, response.content
    assert response.json() == {"non_field_errors": ["Log out with the token you want to revoke."]}


@pytest.mark.django_db
def test_the_token_is_stored_hashed_and_nowhere_in_clear(clinician):
    token = token_for("dr_lee")
    stored = AuthToken.objects.get(user=clinician)
    assert stored.digest != token
    assert token not in stored.digest
    assert len(stored.token_key) < len(token)  # only a short prefix, to find the row
    # Not in any column of any table (the search does find the digest, where it belongs).
    assert tables_holding(stored.digest) == [AuthToken._meta.db_table]
    assert tables_holding(token) == []


def tables_holding(text: str) -> list[str]:
    found = []
    with connection.cursor() as cursor:
        for model in apps.get_models(include_auto_created=True):
            if not model._meta.managed or model._meta.proxy:
                continue  # views (pghistory's event aggregates) and proxies of other tables
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"SELECT count(*) FROM {table} AS t WHERE row_to_json(t)::text LIKE %s", [f"%{text}%"])
            if cursor.fetchone()[0]:
                found.append(model._meta.db_table)
    return found


# --- 3. Strangers ------------------------------------------------------------------------------

ANONYMOUS_CALLS = [
    ("get", ""),
    ("get", "patients/"),
    ("post", "patients/"),
    ("get", "patients/00000000-0000-0000-0000-000000000000/"),
    ("get", "patients/00000000-0000-0000-0000-000000000000/response-curve/"),
    ("get", "phq9/"),
    ("post", "phq9/"),
    ("get", "protocols/"),
    ("get", "series/"),
    ("post", "series/preview/"),
    ("get", "infusions/"),
    ("post", "infusions/00000000-0000-0000-0000-000000000000/start/"),
    ("get", "boosters/"),
    ("get", "boosters/due/"),
    ("get", "maintenance-plans/"),
    ("get", "notifications/"),
    ("post", "notifications/read-all/"),
    ("get", "me/"),
    ("post", "auth/logout/"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), ANONYMOUS_CALLS)
def test_an_anonymous_call_gets_401_with_www_authenticate(method, path):
    response = getattr(APIClient(), method)(f"{API}/{path}")
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Token"
    assert no_store(response)


# --- 4. Browser sessions -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_signed_in_browser_session_reads_the_api(clinician):
    client = APIClient()
    client.force_login(clinician)
    response = client.get(f"{API}/me/")
    assert response.status_code == 200
    assert response.json()["username"] == "dr_lee"


@pytest.mark.django_db
def test_a_session_post_without_a_csrf_token_is_refused(clinician, patient):
    body = {"patient": str(patient.pk), **{f"item_{n}": 1 for n in range(1, 10)}}
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(clinician)
    response = client.post(f"{API}/phq9/", body, format="json")
    assert response.status_code == 403, response.content
    assert "CSRF" in response.json()["detail"]
    assert not PHQ9Assessment.objects.exists()

    # A token is not a cookie: the same request with a token needs no CSRF token.
    token_client = APIClient(enforce_csrf_checks=True)
    token_client.credentials(HTTP_AUTHORIZATION=f"Token {token_for('dr_lee')}")
    assert token_client.post(f"{API}/phq9/", body, format="json").status_code == 201


# --- 5. Throttling -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_token_endpoint_allows_ten_attempts_a_minute_per_address(clinician, clock):
    # Failed logins lock the account and the address after five (tests/test_security.py);
    # the throttle also bounds successful ones, ten a minute per address.
    for _ in range(10):
        assert log_in("dr_lee").status_code == 200
    throttled = log_in("dr_lee")
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert no_store(throttled)
    assert AuthToken.objects.count() == 10

    # Another address is counted apart; a minute later this one may try again.
    assert log_in("dr_lee", REMOTE_ADDR="10.0.0.2").status_code == 200
    clock.shift(dt.timedelta(seconds=61))
    assert log_in("dr_lee").status_code == 200


@pytest.mark.django_db
def test_a_forged_forwarded_for_header_does_not_reset_the_throttle(clinician):
    """The client's address is REMOTE_ADDR (or what a trusted proxy says), not whatever
    X-Forwarded-For the client sends: otherwise each request can claim a new address."""
    for attempt in range(10):
        assert log_in("dr_lee", HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}").status_code == 200
    assert log_in("dr_lee", HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 429


# --- 6. No caching ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_responses_are_never_stored(clinician, patient):
    token_post = log_in("dr_lee")
    assert token_post.status_code == 200
    assert no_store(token_post)
    client = with_token(token_post.json()["token"])

    for response in (
        client.get(f"{API}/patients/"),
        client.get(f"{API}/patients/{patient.pk}/"),
        client.get(f"{API}/me/"),
        client.get(f"{API}/patients/00000000-0000-0000-0000-000000000000/"),  # 404
        client.get(f"{API}/phq9/", {"patient": "not-a-uuid"}),  # 400
        log_in("dr_lee", "wrong"),  # 400
    ):
        assert no_store(response), (response.status_code, response.get("Cache-Control"))
        assert "private" in response["Cache-Control"] or "no-store" in response["Cache-Control"]


# --- 7. Schema and docs -------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_schema_is_public_openapi_3():
    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.")

    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/patients/" in schema["paths"]
    assert "/api/v1/auth/token/" in schema["paths"]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)
        self._in_script = tag == "script" and not dict(attrs).get("src")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.inline_scripts.append(data)


@pytest.mark.django_db
def test_the_docs_page_loads_only_files_of_this_site():
    client = APIClient()
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    links = _Links()
    links.feed(response.content.decode())

    assert links.urls, "the page loads its scripts and styles"
    foreign = [url for url in links.urls if urlsplit(url).netloc not in ("", "testserver")]
    assert foreign == []
    for script in links.inline_scripts:
        assert not re.search(r"https?://", script), script
    for url in links.urls:
        path = urlsplit(url)
        if path.path.startswith("/static/"):
            assert client.get(url).status_code == 200, url
