"""What the browser tests share: logging in through the real login page."""

from __future__ import annotations

from tests.factories import PASSWORD


def log_in(page, server, username: str, password: str = PASSWORD, *, admin: bool = False) -> None:
    """Log in on the login page (or the admin's own) of ``server`` (the live server or its URL)."""
    base = getattr(server, "url", server)
    page.goto(f"{base}/{'admin/login' if admin else 'accounts/login'}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
