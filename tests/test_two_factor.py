"""Two-factor authentication (TOTP): setting it up, logging in with a code, wrong codes
throttled and locked out, backup codes, the clinic's requirement, and the API token."""

from __future__ import annotations

import base64
import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
import time_machine
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core.cache import cache
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from tests.factories import PASSWORD

NEW_YORK = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 11, 23, 9, 0, 7, tzinfo=NEW_YORK)  # seven seconds into a 30-second step
STEP = "login_view-current_step"  # the login wizard's own field
TOKEN_URL = "/api/v1/auth/token/"
ADDRESS = "198.51.100.7"


@pytest.fixture(autouse=True)
def fresh_counters():
    """Throttle counts live in the cache; lockouts and devices in the (rolled back) database."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def code_for(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The code the phone shows now, from the device's key (as an authenticator app computes it)."""
    device.refresh_from_db()
    value = totp(device.bin_key, device.step, device.t0, device.digits, device.drift + steps_ahead)
    return f"{value:0{device.digits}d}"


def enrol(user) -> TOTPDevice:
    """A confirmed device, as the setup page leaves it."""
    return TOTPDevice.objects.create(user=user, name="default", confirmed=True)


def backup_codes(user, *codes: str) -> StaticDevice:
    device = StaticDevice.objects.create(user=user, name="backup")
    for code in codes:
        device.token_set.create(token=code)
    return device


def password_step(client, username: str, password: str = PASSWORD, *, next_url: str = ""):
    url = reverse("login") + (f"?next={next_url}" if next_url else "")
    return client.post(url, {STEP: "auth", "username": username, "password": password}, REMOTE_ADDR=ADDRESS)


def code_step(client, code: str):
    return client.post(reverse("login"), {STEP: "token", "token-otp_token": code}, REMOTE_ADDR=ADDRESS)


def backup_step(client, code: str):
    client.post(reverse("login"), {"wizard_goto_step": "backup"}, REMOTE_ADDR=ADDRESS)
    return client.post(reverse("login"), {STEP: "backup", "backup-otp_token": code}, REMOTE_ADDR=ADDRESS)


def signed_in(client) -> bool:
    return SESSION_KEY in client.session


def verified(client) -> bool:
    return signed_in(client) and DEVICE_ID_SESSION_KEY in client.session


def log_in_with_code(client, user, device: TOTPDevice) -> None:
    assert password_step(client, user.username).status_code == 200
    assert code_step(client, code_for(device)).status_code == 302
    assert verified(client)


# --- Setting it up ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_clinician_sets_up_totp_with_the_key_on_the_page_and_a_real_code(client, clinician, clock):
    client.force_login(clinician)
    profile = client.get(reverse("two_factor:profile"))
    assert profile.status_code == 200
    assert "Off" in profile.text
    assert reverse("two_factor:setup") in profile.text

    page = client.get(reverse("two_factor:setup"))
    assert page.status_code == 200
    assert f'src="{reverse("two_factor:qr")}"' in page.text  # the QR code is an <img> at its own address
    shown = re.search(r'<code id="totp-key">([A-Z2-7 ]+)</code>', page.text).group(1)
    key = base64.b32decode(shown.replace(" ", ""))
    assert len(key) == 20
    assert "<script>" not in page.text
    assert "style=" not in page.text

    wrong = client.post(reverse("two_factor:setup"), {"setup_view-current_step": "generator", "generator-token": "0"})
    assert wrong.status_code == 200
    assert "That code is not right" in wrong.text
    assert not TOTPDevice.objects.filter(user=clinician).exists()

    now = f"{totp(key):06d}"  # what the phone shows, computed from the key read off the page
    done = client.post(reverse("two_factor:setup"), {"setup_view-current_step": "generator", "generator-token": now})
    assert done.status_code == 302
    assert done["Location"] == reverse("two_factor:setup_complete")
    device = TOTPDevice.objects.get(user=clinician)
    assert device.confirmed
    assert device.name == "default"
    assert device.bin_key == key
    assert verified(client), "setting up counts as giving a code in this session"
    assert "Two-factor authentication is on" in client.get(done["Location"]).text
    assert "On" in client.get(reverse("two_factor:profile")).text
    # Setting up again is not offered over a working device.
    assert client.get(reverse("two_factor:setup"))["Location"] == reverse("two_factor:setup_complete")


@pytest.mark.django_db
def test_the_qr_code_is_an_svg_image_with_the_clinics_name_and_no_script_or_style(client, scheduler):
    client.force_login(scheduler)
    assert client.get(reverse("two_factor:qr")).status_code == 404  # no key until the setup page made one
    page = client.get(reverse("two_factor:setup"))
    image = client.get(reverse("two_factor:qr"))
    assert image.status_code == 200
    assert image["Content-Type"].startswith("image/svg+xml")
    svg = image.content.decode()
    assert "<svg" in svg
    assert "<script" not in svg
    assert "style=" not in svg
    assert page.context["otpauth_url"].startswith("otpauth://totp/")
    assert "issuer=" + settings.CLINIC_NAME.replace(" ", "+") in page.context["otpauth_url"]


@pytest.mark.django_db
def test_the_header_links_staff_to_their_two_factor_page_and_patients_cannot_open_it(client, scheduler, patient):
    client.force_login(scheduler)
    assert reverse("two_factor:profile") in client.get(reverse("patients:list")).text
    client.force_login(patient.user)
    assert reverse("two_factor:profile") not in client.get(reverse("portal:home")).text
    for name in ("profile", "setup", "qr", "backup_tokens", "disable"):
        assert client.get(reverse(f"two_factor:{name}")).status_code == 403, name
    client.logout()
    response = client.get(reverse("two_factor:setup"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_backup_codes_are_made_on_their_page_and_turning_off_removes_every_device(client, clinician, clock):
    device = enrol(clinician)
    log_in_with_code(client, clinician, device)
    assert "no backup codes" in client.get(reverse("two_factor:backup_tokens")).text
    response = client.post(reverse("two_factor:backup_tokens"), follow=True)
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", response.text)
    assert len(codes) == 10
    assert sorted(codes) == sorted(StaticDevice.objects.get(user=clinician).token_set.values_list("token", flat=True))
    assert "10" in client.get(reverse("two_factor:profile")).text

    page = client.get(reverse("two_factor:disable"))
    assert page.status_code == 200
    assert client.post(reverse("two_factor:disable"), {}).status_code == 200  # the box must be ticked
    response = client.post(reverse("two_factor:disable"), {"understand": "on"})
    assert response["Location"] == reverse("two_factor:profile")
    assert not TOTPDevice.objects.filter(user=clinician).exists()
    assert not StaticDevice.objects.filter(user=clinician).exists()
    assert client.get(reverse("patients:list")).status_code == 200  # still signed in, now without a device


# --- Logging in ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_login_page_keeps_its_labels_and_button(client):
    page = client.get(reverse("login")).text
    assert '<label for="id_username">Username:</label>' in page
    assert '<label for="id_password">Password:</label>' in page
    assert ">Log in</button>" in page


@pytest.mark.django_db
def test_without_a_device_the_password_is_enough(client, clinician):
    response = password_step(client, "dr_lee", next_url=reverse("patients:list"))
    assert response.status_code == 302
    assert response["Location"] == reverse("patients:list")
    assert signed_in(client)
    assert not verified(client)
    assert client.get(reverse("patients:list")).status_code == 200


@pytest.mark.django_db
def test_a_plain_username_and_password_form_still_logs_in(client, scheduler):
    """A form posted without the wizard's step field (scripts, old bookmarks) is the first step."""
    response = client.post(reverse("login"), {"username": "sam_scheduler", "password": PASSWORD})
    assert response.status_code == 302
    assert signed_in(client)


@pytest.mark.django_db
def test_with_a_device_the_password_leads_to_the_code_and_the_code_logs_in(client, clinician, clock):
    device = enrol(clinician)
    response = password_step(client, "dr_lee", next_url=reverse("patients:list"))
    assert response.status_code == 200
    assert "Code from the authenticator app" in response.text
    assert not signed_in(client), "the password alone opens nothing"
    assert client.get(reverse("patients:list")).status_code == 302

    response = client.post(
        reverse("login") + f"?next={reverse('patients:list')}",
        {STEP: "token", "token-otp_token": code_for(device)},
        REMOTE_ADDR=ADDRESS,
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("patients:list")
    assert verified(client)
    assert client.get(reverse("patients:list")).status_code == 200
    device.refresh_from_db()
    assert device.last_used_at is not None


@pytest.mark.django_db
def test_a_code_works_once(client, clinician, clock):
    device = enrol(clinician)
    code = code_for(device)
    password_step(client, "dr_lee")
    assert code_step(client, code).status_code == 302
    client.logout()
    clock.shift(dt.timedelta(seconds=5))  # same 30-second step: the same code on the phone
    password_step(client, "dr_lee")
    response = code_step(client, code)
    assert response.status_code == 200
    assert "That code is not right" in response.text
    assert not signed_in(client)


@pytest.mark.django_db
def test_wrong_codes_are_refused_and_the_device_backs_off(client, clinician, clock):
    device = enrol(clinician)
    assert device.get_throttle_factor() == settings.OTP_TOTP_THROTTLE_FACTOR == 1
    password_step(client, "dr_lee")
    wrong = code_step(client, "000000" if code_for(device) != "000000" else "111111")
    assert wrong.status_code == 200
    assert "That code is not right" in wrong.text
    assert not signed_in(client)
    device.refresh_from_db()
    assert device.throttling_failure_count == 1

    # At once, even the right code is refused: the device waits 1 s, then 2, 4, 8 ...
    throttled = code_step(client, code_for(device))
    assert "Verification temporarily disabled" in throttled.text
    assert not signed_in(client)

    clock.shift(dt.timedelta(seconds=2))
    assert code_step(client, code_for(device)).status_code == 302
    assert verified(client)
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


@pytest.mark.django_db
def test_wrong_codes_count_toward_the_lockout_like_wrong_passwords(client, clinician, clock):
    device = enrol(clinician)
    password_step(client, "dr_lee")
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        clock.shift(dt.timedelta(seconds=2**attempt + 1))  # past the device's back-off: a real guess each time
        assert code_step(client, "999999" if code_for(device) != "999999" else "888888").status_code == 200
    locked = code_step(client, "999999" if code_for(device) != "999999" else "888888")
    assert locked.status_code == 429
    assert "Too many attempts" in locked.text
    assert AccessAttempt.objects.filter(username="dr_lee").exists()

    clock.shift(dt.timedelta(seconds=60))
    assert password_step(client, "dr_lee").status_code == 429, "the account is locked, password or not"
    assert not signed_in(client)


@pytest.mark.django_db
def test_a_locked_account_cannot_keep_guessing_codes_on_an_open_code_step(client, clinician, clock):
    device = enrol(clinician)
    password_step(client, "dr_lee")
    other = client.__class__()
    for _ in range(settings.AXES_FAILURE_LIMIT):  # someone else locks the account meanwhile
        other.post(reverse("login"), {"username": "dr_lee", "password": "guess"}, REMOTE_ADDR="203.0.113.9")
    response = code_step(client, code_for(device))
    assert response.status_code == 429
    assert not signed_in(client)


@pytest.mark.django_db
def test_the_code_step_expires_back_to_the_password(client, clinician, clock):
    device = enrol(clinician)
    password_step(client, "dr_lee")
    clock.shift(dt.timedelta(seconds=settings.TWO_FACTOR_LOGIN_TIMEOUT + 1))
    response = code_step(client, code_for(device))
    assert response.status_code == 200
    assert "timed out" in response.text
    assert not signed_in(client)


@pytest.mark.django_db
def test_a_backup_code_logs_in_once(client, clinician, clock):
    enrol(clinician)
    backup_codes(clinician, "abcd2345", "efgh6723")
    page = password_step(client, "dr_lee")
    assert "Use a backup code" in page.text
    response = backup_step(client, "abcd2345")
    assert response.status_code == 302
    assert verified(client)
    client.logout()

    clock.shift(dt.timedelta(seconds=5))
    password_step(client, "dr_lee")
    response = backup_step(client, "abcd2345")
    assert response.status_code == 200
    assert not signed_in(client)
    assert StaticDevice.objects.get(user=clinician).token_set.count() == 1


@pytest.mark.django_db
def test_a_password_only_session_of_an_account_with_a_device_is_ended(client, superuser, clock):
    """The admin's own login form asks for the password only: such a session opens nothing."""
    enrol(superuser)
    response = client.post(reverse("admin:login"), {"username": "root", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302  # the admin's form took the password ...
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302  # ... but the session does not open the admin
    assert response["Location"] == f"{reverse('login')}?next={reverse('admin:index')}"
    assert not signed_in(client)
    # The same for a session made any other way (here, the test client's).
    client.force_login(superuser)
    assert client.get(reverse("patients:list"))["Location"].startswith(reverse("login"))
    assert not signed_in(client)


@pytest.mark.django_db
def test_a_verified_superuser_opens_the_admin_and_sees_devices_without_their_keys(client, superuser, clock):
    device = enrol(superuser)
    log_in_with_code(client, superuser, device)
    assert client.get(reverse("admin:index")).status_code == 200
    page = client.get(reverse("admin:otp_totp_totpdevice_change", args=[device.pk]))
    assert page.status_code == 200
    assert device.key not in page.text
    assert client.get(reverse("admin:otp_totp_totpdevice_config", args=[device.pk])).status_code == 403


# --- The clinic requires it ------------------------------------------------------------------------


STAFF_PAGES = ["home", "patients:list", "maintenance:board", "infusions:week", "infusions:outcomes", "admin:index"]


@pytest.fixture
def required(settings):
    settings.CLINIC_REQUIRE_TWO_FACTOR = True


@pytest.mark.django_db
@pytest.mark.usefixtures("required")
@pytest.mark.parametrize("who", ["clinician", "scheduler", "superuser"])
def test_staff_without_a_device_reach_only_the_setup_page(request, client, who):
    user = request.getfixturevalue(who)
    client.force_login(user)
    for name in [*STAFF_PAGES, "two_factor:profile", "two_factor:backup_tokens", "admin:login"]:
        response = client.get(reverse(name))
        assert response.status_code == 302, name
        assert response["Location"] == reverse("two_factor:setup"), name
    assert client.post(reverse("patients:list"), {})["Location"] == reverse("two_factor:setup")
    page = client.get(reverse("two_factor:setup"))
    assert page.status_code == 200
    assert "requires two-factor authentication" in page.text
    assert client.get(reverse("two_factor:qr")).status_code == 200
    response = client.get("/api/v1/me/")  # the browser's session on the API too
    assert response.status_code == 403
    assert "set it up on the website" in response.json()["detail"]
    client.post(reverse("logout"))
    assert not signed_in(client)


@pytest.mark.django_db
@pytest.mark.usefixtures("required")
def test_after_logging_in_unenrolled_staff_land_on_setup_and_then_get_in(client, clinician, clock):
    response = password_step(client, "dr_lee", next_url=reverse("patients:list"))
    assert response.status_code == 302
    assert client.get(response["Location"])["Location"] == reverse("two_factor:setup")

    page = client.get(reverse("two_factor:setup"))
    key = base64.b32decode(re.search(r'<code id="totp-key">([A-Z2-7 ]+)</code>', page.text).group(1).replace(" ", ""))
    client.post(reverse("two_factor:setup"), {"setup_view-current_step": "generator", "generator-token": totp(key)})
    for name in STAFF_PAGES[1:-1]:  # the admin is the superusers' (below)
        assert client.get(reverse(name)).status_code == 200, name


@pytest.mark.django_db
@pytest.mark.usefixtures("required")
def test_enrolled_staff_must_give_the_code_and_then_reach_everything(client, clinician, superuser, clock):
    device = enrol(clinician)
    client.force_login(clinician)  # a session without the code
    assert client.get(reverse("patients:list"))["Location"].startswith(reverse("login"))
    log_in_with_code(client, clinician, device)
    for name in STAFF_PAGES[:-1]:
        assert client.get(reverse(name), follow=True).status_code == 200, name
    assert client.get(reverse("two_factor:profile")).status_code == 200

    admin_device = enrol(superuser)
    client.logout()
    log_in_with_code(client, superuser, admin_device)
    assert client.get(reverse("admin:index")).status_code == 200


@pytest.mark.django_db
@pytest.mark.usefixtures("required")
def test_patients_are_never_asked(client, patient):
    response = client.post(reverse("login"), {"username": patient.user.username, "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("portal:home")).status_code == 200
    assert client.get(reverse("home"))["Location"] == reverse("portal:home")


@pytest.mark.django_db
def test_the_requirement_is_off_by_default_and_read_from_the_environment():
    from clinic import settings as production

    assert production.CLINIC_REQUIRE_TWO_FACTOR is False


# --- The API token --------------------------------------------------------------------------------------


def api_login(username: str, password: str = PASSWORD, **extra):
    return APIClient(REMOTE_ADDR=ADDRESS).post(TOKEN_URL, {"username": username, "password": password, **extra})


@pytest.mark.django_db
def test_the_api_asks_an_account_with_a_device_for_the_code(clinician, clock):
    device = enrol(clinician)
    response = api_login("dr_lee")
    assert response.status_code == 400
    assert "two-factor authentication" in response.json()["otp"][0]
    assert "token" not in response.json()

    response = api_login("dr_lee", otp="000000" if code_for(device) != "000000" else "111111")
    assert response.status_code == 400
    assert response.json()["otp"][0].startswith("That code is not right")
    assert AccessAttempt.objects.filter(username="dr_lee").exists(), "a wrong code counts toward the lockout"

    clock.shift(dt.timedelta(seconds=3))
    response = api_login("dr_lee", otp=code_for(device))
    assert response.status_code == 200, response.content
    assert response.json()["user"]["username"] == "dr_lee"

    # The code works once.
    clock.shift(dt.timedelta(seconds=3))
    assert api_login("dr_lee", otp=code_for(device)).status_code == 400


@pytest.mark.django_db
def test_the_api_takes_a_backup_code_once(clinician, clock):
    enrol(clinician)
    backup_codes(clinician, "abcd2345")
    assert api_login("dr_lee", otp="abcd2345").status_code == 200
    assert api_login("dr_lee", otp="abcd2345").status_code == 400


@pytest.mark.django_db
def test_wrong_api_codes_lock_the_account(clinician, clock):
    device = enrol(clinician)
    answers = []
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        clock.shift(dt.timedelta(seconds=2**attempt + 1))
        cache.clear()  # the token endpoint's own per-address throttle is not what is tested here
        answers.append(api_login("dr_lee", otp="000000" if code_for(device) != "000000" else "111111").status_code)
    assert answers == [400] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    clock.shift(dt.timedelta(seconds=60))
    response = api_login("dr_lee", otp=code_for(device))
    assert response.status_code == 429
    assert "Too many failed attempts" in response.json()["detail"]


@pytest.mark.django_db
def test_without_a_device_the_api_needs_no_code_unless_the_clinic_requires_one(settings, clinician, patient):
    assert api_login("dr_lee").status_code == 200
    assert api_login("dr_lee", otp="").status_code == 200
    settings.CLINIC_REQUIRE_TWO_FACTOR = True
    response = api_login("dr_lee")
    assert response.status_code == 403
    assert "set it up on the website" in response.json()["detail"]
    assert api_login(patient.user.username).status_code == 200  # patients are never asked


@pytest.mark.django_db
def test_the_schema_documents_the_optional_code():
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"][TOKEN_URL]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    component = schema["components"]["schemas"][body]
    assert "otp" in component["properties"]
    assert "otp" not in component.get("required", [])
    assert set(component["required"]) == {"username", "password"}
    assert "403" in operation["responses"]
