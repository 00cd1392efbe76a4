"""Two-factor authentication for staff: codes from an authenticator app (TOTP).

Built on django-otp (the devices, their secrets, and throttling of wrong codes) and
django-two-factor-auth (the login wizard and the setup, backup-code and disable pages);
this module adapts them to the clinic:

* Login (``LoginView`` at /accounts/login/): username and password, then, for an account
  with a device, the 6-digit code (or a backup code). Wrong codes count toward the
  django-axes lockout like wrong passwords (per account and per address), on top of
  django-otp's own back-off on the device (1, 2, 4, 8 ... seconds after each wrong code).
* Set up, backup codes, turn off: staff only (clinicians, schedulers, superusers), from
  the header's "Two-factor authentication" link.
* ``gate`` (run by ``clinic.middleware.TwoFactorMiddleware`` on every request): a session
  of an account with a device that did not give a code (the admin's own login form asks
  for the password only; ``mark_password_only_login`` notes it at login) is ended; with
  ``CLINIC_REQUIRE_TWO_FACTOR`` staff without a device are sent to the setup page and can
  open nothing else until it is done, and staff with one must have given its code.
* ``check_api_code``: the same rules for the API token endpoint (clinic/api.py).

"Has two-factor" means two-factor's default device (the one the setup page creates), the
same test the login wizard makes, so the wizard, the gate and the API never disagree.
"""

from __future__ import annotations

import time

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse, reverse_lazy
from django_otp import verify_token
from django_otp.models import VerifyNotAllowed
from two_factor import views as two_factor_views
from two_factor.forms import MethodForm
from two_factor.utils import default_device, get_otpauth_url, totp_digits

from audit import access as audit_access
from patients import access

#: What the gate and the API say to staff who must set up two-factor first.
SETUP_REQUIRED = (
    "This clinic requires two-factor authentication for staff accounts: set it up on the website "
    "(Two-factor authentication, in the page header) before using the API."
)
CODE_REQUIRED = (
    "This account uses two-factor authentication: send the 6-digit code from the authenticator app "
    "(or one of the account's backup codes) as 'otp'."
)
WRONG_CODE = "That code is not right. Enter the current code from the authenticator app, or an unused backup code."


def applies_to(user) -> bool:
    """Two-factor is offered to (and, when the clinic requires it, demanded of) staff:
    clinicians, schedulers, auditors (they read the audit trail, contact details and
    notes included) and superusers. Patients are never asked."""
    return access.is_staff_member(user) or access.is_auditor(user)


def has_two_factor(user) -> bool:
    """Whether the account has two-factor's default device (the one the setup page makes),
    confirmed: one query, over every kind of device."""
    from django_otp import device_classes

    if not user.is_authenticated:
        return False
    first, *others = (
        model.objects.filter(user=user, confirmed=True, name="default").values("pk") for model in device_classes()
    )
    return first.union(*others, all=True).exists()


def required_for(user) -> bool:
    """Whether this clinic makes ``user`` set up two-factor before anything else."""
    return bool(settings.CLINIC_REQUIRE_TWO_FACTOR) and applies_to(user)


# --- Lockout: wrong codes count as failed logins (django-axes) ---------------------------


def count_failure(request, username: str) -> None:
    """Record a wrong code as a failed login for this account and address: django-axes
    counts it with wrong passwords, and marks the request if it now locks."""
    user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)


def is_locked_out(request, username: str) -> bool:
    from axes.handlers.proxy import AxesProxyHandler

    return not AxesProxyHandler.is_allowed(request, {"username": username})


# --- The gate (clinic.middleware.TwoFactorMiddleware) ---------------------------------------


def _setup_paths() -> frozenset[str]:
    """What staff who must set up two-factor may still open: the setup page, its QR code
    image, and logging out."""
    return frozenset({reverse("two_factor:setup"), reverse("two_factor:qr"), reverse("logout")})


#: Set in the session by a login that took the password alone for an account with a device.
PASSWORD_ONLY = "_clinic_two_factor_password_only"


@receiver(user_logged_in)
def mark_password_only_login(sender, request, user, **kwargs) -> None:
    """A login without a code (the admin's own login form asks for the password only) of
    an account with two-factor: the gate ends that session at its next request. Checked
    once per login, so that the gate needs no query on every request."""
    session = getattr(request, "session", None)
    if session is None:
        return
    session[DEVICES_CHECKED_AT] = time.time()
    if getattr(user, "otp_device", None) is None and has_two_factor(user):
        session[PASSWORD_ONLY] = True


#: When the gate last asked whether this session's account has a device (epoch seconds).
DEVICES_CHECKED_AT = "_clinic_two_factor_checked_at"
#: How often a password-only session asks again: an account that sets up two-factor (its
#: owner fears the password leaked) has its other password-only sessions ended this soon.
RECHECK_SECONDS = 60


def _device_set_up_since(request, user) -> bool:
    """Whether the account now has a device, asked at most once a minute per session (one
    query then; none on other requests)."""
    now = time.time()
    if now - request.session.get(DEVICES_CHECKED_AT, 0) < RECHECK_SECONDS:
        return False
    request.session[DEVICES_CHECKED_AT] = now
    return has_two_factor(user)


def gate(request):
    """The response that replaces this request's, or None to let it through.

    Costs no query for a session that gave its code, or one without a device while the
    clinic does not require two-factor; staff who must set it up are checked each request.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    if getattr(user, "is_verified", lambda: False)():
        return None  # gave a code in this session
    required = required_for(user)
    if request.session.get(PASSWORD_ONLY) or (required and has_two_factor(user)) or _device_set_up_since(request, user):
        # The account has two-factor, and this session did not give a code: not a session.
        # The access log still names who asked, and that they were turned away.
        setattr(request, audit_access.USER_MARK, user)
        setattr(request, audit_access.REFUSED_MARK, True)
        logout(request)
        request.user.otp_device = None
        request.user.is_verified = lambda: False
        if request.path.startswith("/api/") or request.path_info == reverse("login"):
            return None  # on as an anonymous request: the API answers 401, the login page shows
        messages.info(request, "This account uses two-factor authentication: log in with your password and a code.")
        return redirect_to_login(request.get_full_path())
    if required and request.path_info not in _setup_paths():
        setattr(request, audit_access.REFUSED_MARK, True)
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": SETUP_REQUIRED}, status=403)
        return redirect("two_factor:setup")
    return None


# --- The API token endpoint -------------------------------------------------------------------


def check_api_code(request, user, code: str) -> tuple[str, str] | None:
    """Check the second factor of an API login of ``user`` (password already right).

    Returns None when the login may go on, or ``(kind, message)``: kind "setup" (the clinic
    requires two-factor and the account has none), "required" (no code sent) or "wrong"
    (a wrong code, counted toward the lockout; also while django-otp's back-off holds).
    A code of 6 digits is checked against the authenticator app, anything else against
    the backup codes (each works once), so a typo never throttles the other device.
    """
    device = default_device(user)
    if device is None:
        return ("setup", SETUP_REQUIRED) if required_for(user) else None
    code = (code or "").strip().replace(" ", "")
    if not code:
        return ("required", CODE_REQUIRED)
    if not (code.isdigit() and len(code) == totp_digits()):
        device = user.staticdevice_set.filter(confirmed=True).first()
    message = WRONG_CODE
    if device is not None:
        allowed, details = device.verify_is_allowed()
        if allowed and verify_token(user, device.persistent_id, code) is not None:
            return None
        if not allowed and (details or {}).get("reason") == VerifyNotAllowed.N_FAILED_ATTEMPTS:
            message = "Too many wrong codes: wait a little, then enter the current code from the authenticator app."
    count_failure(request, user.get_username())
    return ("wrong", message)


# --- Views -------------------------------------------------------------------------------------


class StaffOnlyMixin:
    """The two-factor pages are the staff's (anonymous users are sent to log in by the
    view's own login_required; patients are refused)."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not applies_to(request.user):
            raise PermissionDenied("Two-factor authentication is for the clinic's staff accounts.")
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, *args, **kwargs):
        context = super().get_context_data(*args, **kwargs)
        context["require_two_factor"] = required_for(self.request.user)
        return context


def _code_input(**attrs) -> forms.TextInput:
    return forms.TextInput(
        attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True, "spellcheck": "false"}
        | attrs
    )


class LoginView(two_factor_views.LoginView):
    """Username and password, then the code for accounts with two-factor.

    The password step keeps Django's plain field names ("username", "password"), so a
    form posted without the wizard's step field is taken as that first step.
    """

    template_name = "registration/login.html"
    redirect_authenticated_user = True
    CODE_STEPS = (two_factor_views.LoginView.TOKEN_STEP, two_factor_views.LoginView.BACKUP_STEP)

    def get_form_prefix(self, step=None, form=None):
        if (step or self.steps.current) == self.AUTH_STEP:
            return None
        return super().get_form_prefix(step, form)

    def post(self, *args, **kwargs):
        request = self.request
        step_field = f"{self.prefix}-current_step"
        if step_field not in request.POST:
            data = request.POST.copy()
            data[step_field] = self.AUTH_STEP
            request.POST = data
        user = self.get_user()
        if (
            user
            and request.POST[step_field] in self.CODE_STEPS
            and not request.POST.get("wizard_goto_step")
            and is_locked_out(request, user.get_username())
        ):
            from clinic.views import locked_out

            self.storage.reset()
            return locked_out(request)
        return super().post(*args, **kwargs)

    def get_form(self, step=None, **kwargs):
        form = super().get_form(step=step, **kwargs)
        step = step or self.steps.current
        if step in self.CODE_STEPS:
            field = form.fields["otp_token"]
            if step == self.TOKEN_STEP:
                field.label = "Code from the authenticator app"
                field.widget = _code_input(pattern="[0-9]*", maxlength=str(totp_digits()))
            else:
                field.label = "Backup code"
                field.widget = _code_input(inputmode="text", maxlength="16")
            form.otp_error_messages = form.otp_error_messages | {
                "token_required": "Enter the code.",
                "invalid_token": WRONG_CODE,
            }
        return form

    def render(self, form=None, **kwargs):
        # A code that was entered and refused: a failed login for django-axes, as a wrong
        # password is (the first step's failures are counted by authenticate()).
        if (
            form is not None
            and form.is_bound
            and self.steps.current in self.CODE_STEPS
            and form.errors
            and (form.data.get(form.add_prefix("otp_token")) or "").strip()
            and self.get_user()
        ):
            count_failure(self.request, self.get_user().get_username())
        return super().render(form, **kwargs)

    def get_context_data(self, form, **kwargs):
        context = super().get_context_data(form, **kwargs)
        context["totp_digits"] = totp_digits()
        return context


class SetupView(StaffOnlyMixin, two_factor_views.SetupView):
    """One page: the QR code and the key to type instead, and the first code to confirm."""

    # No welcome page and no choice of method (TOTP is the only one): straight to the code.
    form_list = (("method", MethodForm),)

    def get_form(self, step=None, **kwargs):
        form = super().get_form(step=step, **kwargs)
        if "token" in form.fields:
            form.fields["token"].label = "Code from the app"
            form.fields["token"].widget = _code_input(pattern="[0-9]*", maxlength=str(totp_digits()))
            form.error_messages = form.error_messages | {
                "invalid_token": "That code is not right: enter the code the app shows now (check the phone's clock)."
            }
        return form

    def get_context_data(self, form, **kwargs):
        context = super().get_context_data(form, **kwargs)
        if self.steps.current == "generator":
            key = context["secret_key"]
            # The app shows the clinic's name over the codes (not the server's host name).
            context["issuer"] = settings.CLINIC_NAME
            context["otpauth_url"] = get_otpauth_url(
                self.request.user.get_username(), key, settings.CLINIC_NAME, totp_digits()
            )
            context["secret_key_groups"] = [key[start : start + 4] for start in range(0, len(key), 4)]
        context["cancel_url"] = reverse("two_factor:profile")
        return context


class QRGeneratorView(StaffOnlyMixin, two_factor_views.QRGeneratorView):
    """The QR code as an SVG image at its own address (an <img>: no inline markup)."""

    def get_issuer(self):
        return settings.CLINIC_NAME


class SetupCompleteView(StaffOnlyMixin, two_factor_views.SetupCompleteView):
    pass


class BackupTokensView(StaffOnlyMixin, two_factor_views.BackupTokensView):
    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, "New backup codes made: the old ones no longer work.")
        return response


class ProfileView(StaffOnlyMixin, two_factor_views.ProfileView):
    pass


class DisableView(StaffOnlyMixin, two_factor_views.DisableView):
    success_url = reverse_lazy("two_factor:profile")

    def get_form(self, form_class=None):
        form = super().get_form(form_class)
        form.fields["understand"].label = "Yes, turn off two-factor authentication for my account"
        return form

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(
            self.request, "Two-factor authentication is off: the app's codes and the backup codes are gone."
        )
        return response
