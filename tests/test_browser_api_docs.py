"""A developer opens /api/docs/: Swagger UI loads from this site's own files (no CDN),
lists the operations, and a call made from it with a token answers."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from knox.models import AuthToken
from playwright.sync_api import expect

from tests.factories import PatientFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_api_docs_load_from_local_files_and_try_a_call(page, live_server, screenshot):
    clinician = UserFactory(username="dr_docs", role="clinician")
    PatientFactory(last_name="Quaye")
    token = AuthToken.objects.create(user=clinician)[1]
    requested_hosts = set()
    page.on("request", lambda request: requested_hosts.add(urlparse(request.url).netloc))

    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Ketamine clinic API")
    expect(page.locator("#operations-patients-patients_list")).to_be_visible()
    screenshot("api-docs")
    assert requested_hosts == {urlparse(live_server.url).netloc}, f"files from elsewhere: {requested_hosts}"

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
    expect(response).to_contain_text("Quaye")
    screenshot("api-docs-try-it-out")
