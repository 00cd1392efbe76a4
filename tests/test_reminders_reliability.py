"""Reminders are never lost and never doubled: proved against real Redis and real workers.

Each test commits its data (transactional test) so that ``celery worker`` processes, started
here against the test database and a Redis database of these tests' own, can see it.
Emails are written one file per message (tests.reliability_support.SlowFileEmailBackend)
and counted per recipient: every reminder row here has its own recipient.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import time_machine
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone

from clinic.tasks import heartbeat
from maintenance import reminders
from maintenance.models import (
    JobRun,
    Notification,
    NotificationKind,
    Reminder,
    ReminderChannel,
    ReminderKind,
    ReminderStatus,
)
from maintenance.tasks import dispatch
from patients.models import PHQ9Assessment
from patients.phq9 import ITEM_FIELDS
from sessions.scheduling import clinic_datetime
from sessions.services import series_create, session_complete, session_start
from tests.factories import MaintenancePlanFactory, PatientFactory, PHQ9Factory, ProtocolFactory, UserFactory
from tests.reliability_support import (
    BlockingEmailBackend,
    ThrowawayRedis,
    Worker,
    broker,
    database_url,
    emailed,
    free_port,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DISPATCH = "maintenance.tasks.dispatch"
IN_APP, EMAIL = ReminderChannel.IN_APP, ReminderChannel.EMAIL
PENDING, SENT = ReminderStatus.PENDING, ReminderStatus.SENT


# --- Fixtures and builders ------------------------------------------------------------------


@pytest.fixture
def redis_url():
    """A Redis database of these tests' own on the suite's Redis server, empty at the start."""
    parts = urlsplit(django_settings.REDIS_URL)
    url = urlunsplit((parts.scheme, parts.netloc, "/14", "", ""))
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def start_worker(transactional_db, tmp_path):
    """Start real worker processes on the test database; every one is killed at the end
    (before the test database is flushed)."""
    started: list[Worker] = []

    def start(name: str, *, redis_url: str, **options) -> Worker:
        worker = Worker(
            name, workdir=tmp_path, database_url=database_url(connection.settings_dict), redis_url=redis_url, **options
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def staff(count: int, prefix: str) -> list[User]:
    """Clinicians (safety alerts go only to people who are clinicians when they are sent)."""
    users = User.objects.bulk_create(
        User(username=f"{prefix}{i}", email=f"{prefix}{i}@clinic.test") for i in range(count)
    )
    clinicians = Group.objects.get_or_create(name="clinician")[0]
    clinicians.user_set.add(*users)
    return users


def pending_safety_alerts(recipients: list[User]) -> PHQ9Assessment:
    """An unacknowledged item-9 PHQ-9 and, for each recipient, a pending in-app and email
    reminder about it, all due, the two channels interleaved."""
    patient = PatientFactory()
    assessment = PHQ9Factory(patient=patient, item_9=2)
    now = timezone.now()
    rows = [
        Reminder(
            kind=ReminderKind.SAFETY_ALERT,
            patient=patient,
            subject_id=assessment.pk,
            recipient=user,
            channel=channel,
            title=f"Safety alert {i}",
            link=patient.get_absolute_url(),
            send_after=now - dt.timedelta(seconds=2 * (len(recipients) - i) - j),
        )
        for i, user in enumerate(recipients)
        for j, channel in enumerate((IN_APP, EMAIL))
    ]
    Reminder.objects.bulk_create(rows)
    return assessment


def completed_induction(patient, *, scheduler, clinician) -> dt.date:
    """Six induction infusions given from a Monday ten weeks ago; returns the last one's day."""
    monday = timezone.localdate() - dt.timedelta(days=70)
    monday -= dt.timedelta(days=monday.weekday())
    protocol = ProtocolFactory()
    with time_machine.travel(clinic_datetime(monday - dt.timedelta(days=3), dt.time(12)), tick=False) as clock:
        series = series_create(patient=patient, protocol=protocol, start_date=monday, created_by=scheduler)
        for session in series.sessions.order_by("scheduled_at"):
            clock.move_to(session.scheduled_at + dt.timedelta(hours=1))
            session = session_start(session=session, by=clinician, weight_kg="72.5", started_at=session.scheduled_at)
            session_complete(session=session, by=clinician, ended_at=session.scheduled_at + dt.timedelta(minutes=40))
    MaintenancePlanFactory(patient=patient, protocol=protocol)
    return series.sessions.order_by("scheduled_at").last().scheduled_on


def notified(**filters) -> Counter:
    return Counter(Notification.objects.filter(**filters).values_list("recipient__email", flat=True))


def dispatch_until_drained(*, timeout: float, every: float = 5) -> None:
    """Send ``dispatch`` through the broker until no reminder is pending (a row whose
    killed worker's lock PostgreSQL has not yet released is skipped by one run)."""
    deadline = time.monotonic() + timeout
    while True:
        dispatch.delay()
        try:
            wait_for(
                lambda: not Reminder.objects.filter(status=PENDING).exists(),
                timeout=min(every, max(deadline - time.monotonic(), 0)),
                message="every reminder to leave 'pending'",
            )
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def phq9_data(**answers) -> dict:
    data = dict.fromkeys(ITEM_FIELDS, "1") | {"difficulty": "somewhat"}
    data["taken_at"] = timezone.localtime().strftime("%Y-%m-%dT%H:%M")
    return data | answers


# --- Idempotent -----------------------------------------------------------------------------


def test_two_workers_dispatching_at_once_send_every_reminder_exactly_once(start_worker, redis_url, tmp_path):
    recipients = staff(100, "idem")
    assessment = pending_safety_alerts(recipients)  # 200 rows: 100 in-app, 100 email
    one = start_worker("one", redis_url=redis_url, pool="prefork", email_delay=0.02)
    two = start_worker("two", redis_url=redis_url, pool="prefork", email_delay=0.02)
    one.wait_ready()
    two.wait_ready()

    with broker(redis_url):
        for _ in range(4):
            dispatch.delay()
        wait_for(lambda: len(one.results(DISPATCH)) + len(two.results(DISPATCH)) == 4, timeout=60, message="4 runs")

    assert set(Reminder.objects.values_list("status", flat=True)) == {SENT}
    everyone = Counter(user.email for user in recipients)
    assert notified(subject_id=assessment.pk) == everyone
    assert emailed(tmp_path / "mail") == everyone
    # Each run returns how many it sent: together exactly the 200 rows. (Whether both
    # workers share the work is test_a_second_dispatcher_is_not_blocked_... below.)
    sent = {worker.name: [int(result) for result in worker.results(DISPATCH)] for worker in (one, two)}
    assert sum(sum(runs) for runs in sent.values()) == 200, sent


@pytest.mark.parametrize("shared", ["patient", "recipient"])
def test_a_second_dispatcher_is_not_blocked_by_the_row_the_first_is_sending(shared, settings):
    """Two dispatchers at once (two workers): while the first is delivering an email, the
    second claims the next due reminder, even one about the same patient or to the same
    person, instead of finding "nothing to send"."""
    settings.EMAIL_BACKEND = "tests.reliability_support.BlockingEmailBackend"
    first_user, second_user = staff(2, "lock")
    first_patient = PatientFactory()
    first_alert = PHQ9Factory(patient=first_patient, item_9=2)
    if shared == "patient":  # another clinician told about the same patient
        patient, alert, recipient = first_patient, first_alert, second_user
    else:  # the same clinician told about another patient
        patient = PatientFactory()
        alert, recipient = PHQ9Factory(patient=patient, item_9=2), first_user
    now = timezone.now()
    common = {"kind": ReminderKind.SAFETY_ALERT, "title": "Safety alert"}
    Reminder.objects.bulk_create([
        Reminder(**common, patient=first_patient, subject_id=first_alert.pk, recipient=first_user, channel=EMAIL,
                 send_after=now - dt.timedelta(minutes=2)),
        Reminder(**common, patient=patient, subject_id=alert.pk, recipient=recipient, channel=IN_APP,
                 send_after=now - dt.timedelta(minutes=1)),
    ])  # fmt: skip
    BlockingEmailBackend.reset()

    def first_dispatcher() -> None:
        try:
            reminders._dispatch_one()  # claims the email row and blocks in the send
        finally:
            connections.close_all()

    thread = threading.Thread(target=first_dispatcher)
    thread.start()
    try:
        assert BlockingEmailBackend.entered.wait(timeout=10), "the first dispatcher never reached the email"
        second = reminders._dispatch_one()
    finally:
        BlockingEmailBackend.release.set()
        thread.join(timeout=30)
    assert second == 1, (
        f"the second dispatcher found nothing to send while the first was emailing (same {shared}): "
        "SELECT ... FOR UPDATE SKIP LOCKED also locks the joined patient and recipient rows"
    )
    assert Reminder.objects.get(channel=IN_APP).status == SENT


def test_scanning_twice_or_in_two_threads_at_once_creates_each_reminder_once():
    clinician = UserFactory(role="clinician")
    schedulers = [UserFactory(role="scheduler") for _ in range(3)]
    patient = PatientFactory(primary_clinician=clinician)
    last = completed_induction(patient, scheduler=schedulers[0], clinician=clinician)
    now = clinic_datetime(last + dt.timedelta(days=30), dt.time(12))  # the booster is due
    start = threading.Barrier(2)

    def scan() -> int:
        try:
            start.wait(timeout=10)
            return reminders.scan_reminders(now=now)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(scan) for _ in range(2)]:
            future.result(timeout=30)
    reminders.scan_reminders(now=now)
    assert reminders.scan_reminders(now=now) == 0

    rows = list(Reminder.objects.values_list("kind", "stage", "repeat", "recipient__email", "channel"))
    expected = {
        (ReminderKind.BOOSTER_STAGE, "due", 0, user.email, channel)
        for user in (clinician, *schedulers)
        for channel in (IN_APP, EMAIL)
    }
    assert sorted(rows) == sorted(expected)
    assert JobRun.objects.filter(name=reminders.SCAN_JOB).count() == 1


# --- Crash-safe -----------------------------------------------------------------------------


def test_a_worker_killed_mid_batch_loses_nothing_and_the_next_run_sends_the_rest(start_worker, redis_url, tmp_path):
    recipients = staff(40, "crash")
    assessment = pending_safety_alerts(recipients)  # 40 in-app, 40 email
    emails = Reminder.objects.filter(channel=EMAIL)
    doomed = start_worker("doomed", redis_url=redis_url, email_delay=0.2)
    with broker(redis_url):
        dispatch.delay()
        wait_for(lambda: emails.filter(status=SENT).count() >= 3, timeout=60, message="3 emails sent")
        doomed.kill()

        statuses = Counter(Reminder.objects.values_list("status", flat=True))
        assert set(statuses) == {SENT, PENDING}, statuses  # nothing stuck half-way, nothing failed
        sent_emails = list(emails.filter(status=SENT).values_list("recipient__email", flat=True))
        assert 3 <= len(sent_emails) < 40
        mailed = emailed(tmp_path / "mail")
        assert all(mailed[address] == 1 for address in sent_emails)  # "sent" was really sent
        assert sum(mailed.values()) <= len(sent_emails) + 1  # at most the one in flight

        start_worker("survivor", redis_url=redis_url).wait_ready()
        dispatch_until_drained(timeout=45)

    assert set(Reminder.objects.values_list("status", flat=True)) == {SENT}
    everyone = Counter(user.email for user in recipients)
    assert notified(subject_id=assessment.pk) == everyone  # in-app: exactly once each
    mailed = emailed(tmp_path / "mail")
    assert set(mailed) == set(everyone)
    assert 40 <= sum(mailed.values()) <= 41, mailed  # the one in flight may have gone twice


# --- Broker outage ----------------------------------------------------------------------------


def test_while_redis_is_down_pages_save_and_alert_and_emails_go_out_once_it_is_back(
    client, start_worker, settings, tmp_path, caplog
):
    clinician = UserFactory(role="clinician")
    on_duty = UserFactory(role="clinician")
    patient = PatientFactory(primary_clinician=clinician)
    throwaway = ThrowawayRedis(free_port())
    try:
        throwaway.start()
        # The web process's broker and cache are both the Redis that goes down.
        settings.CACHES = {
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": throwaway.url}
        }
        with broker(throwaway.url):
            heartbeat.delay()  # the web process holds a live broker connection, as in production
            throwaway.kill()

            client.force_login(clinician)
            started = time.monotonic()
            response = client.post(reverse("patients:phq9_new", kwargs={"pk": patient.pk}), phq9_data(item_9="2"))
            elapsed = time.monotonic() - started
            assert response.status_code == 302, response.content[:500]
            assert elapsed < 10, f"the page waited {elapsed:.1f} s for the broker"
            assert "Broker unavailable" in caplog.text  # the nudge on commit was tried, and gave up
            assessment = PHQ9Assessment.objects.get(patient=patient)
            assert assessment.item_9 == 2
            both = Counter([clinician.email, on_duty.email])
            assert notified(kind=NotificationKind.SAFETY_ALERT, subject_id=assessment.pk) == both
            alert_emails = Reminder.objects.filter(subject_id=assessment.pk, channel=EMAIL)
            assert Counter(alert_emails.values_list("status", flat=True)) == {PENDING: 2}

            throwaway.start()  # Redis is back, empty: the nudge sent during the outage is gone
            start_worker("after-outage", redis_url=throwaway.url).wait_ready()
            dispatch.delay()
            wait_for(lambda: not alert_emails.filter(status=PENDING).exists(), timeout=30, message="emails sent")
    finally:
        throwaway.kill()

    assert Counter(alert_emails.values_list("status", flat=True)) == {SENT: 2}
    assert emailed(tmp_path / "mail") == both


# --- Beat -----------------------------------------------------------------------------------------


def test_beat_scans_and_dispatches_a_due_booster_and_health_shows_the_scan_alive(
    client, start_worker, redis_url, settings, tmp_path
):
    # The health page reads the worker heartbeat from the cache the worker writes to.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    clinician = UserFactory(role="clinician")
    scheduler = UserFactory(role="scheduler")
    patient = PatientFactory(primary_clinician=clinician)
    completed_induction(patient, scheduler=scheduler, clinician=clinician)  # the booster is overdue
    assert client.get(reverse("health")).json()["reminder_scan"] == "stale"

    # The project's app and beat schedule, every 2 s instead of every minute; the
    # reminders' send time at midnight so that today's are due whatever the hour.
    worker = start_worker(
        "beat",
        redis_url=redis_url,
        pool="prefork",
        beat=True,
        app="tests.reliability_support:fast_beat_app",
        extra_env={"CLINIC_REMINDER_SEND_TIME": "00:00"},
    )
    wait_for(
        lambda: (
            len(worker.results("maintenance.tasks.scan")) >= 3
            and JobRun.objects.filter(name=reminders.DISPATCH_JOB).exists()
            and Reminder.objects.exists()
            and not Reminder.objects.filter(status=PENDING).exists()
        ),
        timeout=60,
        interval=0.5,
        message="beat to scan three times and dispatch what it found",
    )

    both = Counter([clinician.email, scheduler.email])
    assert notified(kind=NotificationKind.BOOSTER_STAGE) == both  # once each, however many scans
    assert emailed(tmp_path / "mail") == both
    health = client.get(reverse("health")).json()
    assert health["reminder_scan"] == "ok", health
    assert health["reminders_pending"] == 0
    assert health["worker"] == "ok", health
