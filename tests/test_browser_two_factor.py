"""A clinician turns on two-factor authentication in the browser, then logs in with a code.

The "phone" is this test: it reads the key the setup page shows for typing by hand and
computes the codes with django-otp's own TOTP function, as an authenticator app would.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import urlparse

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from tests.browser import log_in
from tests.factories import UserFactory

PASSWORD = "correct horse battery staple"

# The live server reads in its own thread, so these tests commit (and the database is
# flushed after each; factories re-create the role groups the migration made).
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.effectiveDirective + " " + event.blockedURI);
}, true);
"""


def code_now(secret: bytes) -> str:
    return f"{totp(secret):06d}"


def record(console: list[str], message) -> None:
    if message.type not in ("error", "warning"):
        return
    if urlparse(message.location.get("url", "")).path == "/favicon.ico":
        return  # the browser asks for /favicon.ico on its own; the site has none
    console.append(f"{message.text} ({message.location.get('url')})")


def no_complaints(page, console: list[str]) -> None:
    assert page.evaluate("window.__cspViolations") == []
    assert console == []


def test_a_clinician_turns_on_two_factor_and_logs_in_with_password_and_code(page, live_server, screenshot):
    clinician = UserFactory(username="dr_lee", role="clinician", first_name="Robin", last_name="Lee")
    console: list[str] = []
    page.context.add_init_script(RECORD_VIOLATIONS)
    page.on("console", lambda message: record(console, message))

    log_in(page, live_server, "dr_lee")
    page.get_by_role("link", name="Two-factor authentication").click()
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    page.get_by_role("link", name="Set up two-factor authentication").click()

    qr = page.get_by_role("img", name="QR code to scan with the authenticator app")
    expect(qr).to_be_visible()
    page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=qr.element_handle())  # it loads
    key = page.locator("#totp-key").inner_text()
    assert re.fullmatch(r"([A-Z2-7]{4} ?)+", key)
    no_complaints(page, console)
    screenshot("two-factor-setup")
    screenshot("two-factor-setup", width=390)
    page.set_viewport_size({"width": 1280, "height": 860})
    secret = base64.b32decode(key.replace(" ", ""))

    # A mistyped code first: refused, and nothing is turned on.
    page.get_by_label("Code from the app").fill("000000" if code_now(secret) != "000000" else "111111")
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    expect(page.get_by_text("That code is not right")).to_be_visible()
    assert not TOTPDevice.objects.filter(user=clinician).exists()

    page.get_by_label("Code from the app").fill(code_now(secret))
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    expect(page.get_by_role("heading", name="Two-factor authentication is on")).to_be_visible()
    assert TOTPDevice.objects.get(user=clinician).bin_key == secret

    page.get_by_role("link", name="Show my backup codes").click()
    page.get_by_role("button", name="Make backup codes").click()
    expect(page.locator(".backup-codes code")).to_have_count(10)
    assert StaticDevice.objects.get(user=clinician).token_set.count() == 10
    screenshot("two-factor-backup-codes")

    page.get_by_role("button", name="Log out").click()
    log_in(page, live_server, "dr_lee")
    code_field = page.get_by_label("Code from the authenticator app")
    expect(code_field).to_be_visible()
    expect(page.get_by_role("link", name="Two-factor authentication")).to_have_count(0)  # not signed in yet
    screenshot("two-factor-login-code")

    code_field.fill(code_now(secret))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{live_server.url}/infusions/today/")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    page.get_by_role("link", name="Two-factor authentication").click()
    expect(page.get_by_text("On", exact=True)).to_be_visible()
    expect(page.get_by_text("10", exact=True)).to_be_visible()  # backup codes left
    screenshot("two-factor-profile")
    no_complaints(page, console)
