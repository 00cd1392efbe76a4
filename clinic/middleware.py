"""Response headers for pages that may show protected health information."""

from django.utils.cache import add_never_cache_headers


class NoStoreForSignedInMiddleware:
    """Pages seen by a signed-in user are never stored by the browser or a proxy, so the
    back button on a shared workstation cannot bring them back after logout."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        # API calls authenticate by token inside DRF, after this middleware's view of the user.
        if (user is not None and user.is_authenticated) or request.path.startswith("/api/"):
            add_never_cache_headers(response)  # Cache-Control: max-age=0, no-cache, no-store, must-revalidate, private
        return response


class SessionIdleTimeoutMiddleware:
    """A signed-in session ends after CLINIC_STAFF_SESSION_IDLE_MINUTES without a request
    (staff) or CLINIC_PATIENT_SESSION_IDLE_MINUTES (patients): each request restarts the
    clock, so an unattended workstation logs itself out."""

    MARK = "_clinic_idle_clock"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        session = getattr(request, "session", None)
        if user is not None and user.is_authenticated and session is not None and session.session_key:
            from django.utils import timezone

            now = int(timezone.now().timestamp())
            # Restart the clock at most once a minute: one session write a minute, not one a request.
            if now - session.get(self.MARK, 0) >= 60:
                restart_idle_clock(session, user, now)
        return response


def idle_minutes(user) -> int:
    from django.conf import settings

    from patients import access

    if access.is_staff_member(user) or access.is_auditor(user):  # auditors read PHI too
        return settings.CLINIC_STAFF_SESSION_IDLE_MINUTES
    return settings.CLINIC_PATIENT_SESSION_IDLE_MINUTES


def restart_idle_clock(session, user, now: int) -> None:
    session[SessionIdleTimeoutMiddleware.MARK] = now
    session.set_expiry(idle_minutes(user) * 60)


class TwoFactorMiddleware:
    """Two-factor authentication on every request (clinic/two_factor.py): a session of an
    account with a device that did not give a code is ended, and when the clinic requires
    two-factor (CLINIC_REQUIRE_TWO_FACTOR) staff without a device reach only the setup page
    (pages, the admin and session calls to the API alike). After django_otp's OTPMiddleware."""

    def __init__(self, get_response):
        from clinic import two_factor  # at start-up: it also marks logins that gave no code

        self.gate = two_factor.gate
        self.get_response = get_response

    def __call__(self, request):
        return self.gate(request) or self.get_response(request)
