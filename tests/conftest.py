"""Shared fixtures: a small cast of users, one per role, and the services checks.

The suite runs against the real PostgreSQL and Redis (clinic/test_settings.py); if
either is unreachable the run stops at once with a message saying which and where.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

from tests import factories

# Playwright's sync API runs an event loop in the test thread; the live server's ORM
# calls happen in their own thread, so Django's async-safety guard does not apply.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _check_services() -> list[str]:
    import psycopg
    import redis

    problems = []
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        problems.append(f"tests need PostgreSQL, but DATABASE_URL points at {db['ENGINE']}")
    else:
        try:
            psycopg.connect(
                host=db["HOST"] or "127.0.0.1",
                port=db["PORT"] or 5432,
                user=db["USER"],
                password=db["PASSWORD"] or None,
                dbname="postgres",
                connect_timeout=3,
            ).close()
        except psycopg.Error as error:
            problems.append(f"PostgreSQL is not reachable at {db['HOST']}:{db['PORT'] or 5432} ({error})")
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        problems.append(f"Redis is not reachable at {settings.REDIS_URL} ({error})")
    return problems


def _flush_past_the_audit_guards() -> None:
    """Transactional tests empty every table between tests with TRUNCATE, which the audit
    trail's guards refuse (audit/migrations/0006_database_guards.py). The test database's
    superuser flushes in replica mode, where triggers do not fire, for that one statement's
    transaction. Production never flushes."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = original(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return ["SET LOCAL session_replication_role = replica", *statements] if statements else statements

    DatabaseOperations.sql_flush = sql_flush


_flush_past_the_audit_guards()


def pytest_sessionstart(session):
    problems = _check_services()
    if not problems:
        # The test broker database holds only what this run sends.
        import redis

        redis.Redis.from_url(settings.REDIS_URL).flushdb()
    if problems:
        pytest.exit(
            "Cannot run the tests:\n  - "
            + "\n  - ".join(problems)
            + "\nStart the services (bash .ci/run does) or set DATABASE_URL / REDIS_URL.",
            returncode=3,
        )


@pytest.fixture
def clinician(db):
    return factories.UserFactory(username="dr_lee", role="clinician")


@pytest.fixture
def other_clinician(db):
    return factories.UserFactory(username="dr_okafor", role="clinician")


@pytest.fixture
def scheduler(db):
    return factories.UserFactory(username="sam_scheduler", role="scheduler")


@pytest.fixture
def auditor(db):
    """Reads the audit trail, and nothing else."""
    return factories.UserFactory(username="rae_auditor", role="auditor")


@pytest.fixture
def superuser(db):
    return factories.UserFactory(username="root", is_superuser=True, is_staff=True)


@pytest.fixture
def patient(db):
    """Patient A, with a portal account."""
    return factories.PatientFactory(with_portal_account=True)


@pytest.fixture
def other_patient(db):
    """Patient B, with a portal account of their own."""
    return factories.PatientFactory(with_portal_account=True)


@pytest.fixture
def protocol(db):
    """The default protocol: six IV infusions twice a week at 0.5 mg/kg."""
    return factories.ProtocolFactory()


# --- Browser --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        message = f"Browser tests need Debian's Chromium at {CHROMIUM}: apt-get install chromium (bash .ci/run does)."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot(page):
    """Save a screenshot under test-artifacts/ (to look at), at desktop or phone width."""
    ARTIFACTS.mkdir(exist_ok=True)

    def take(name: str, *, width: int = 1280) -> Path:
        page.set_viewport_size({"width": width, "height": 860})
        path = ARTIFACTS / f"{name}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
