"""Helpers for tests/test_reminders_reliability.py: real worker processes, a throwaway
Redis, a slow email backend and a way to count what was emailed.

Workers run the production settings (``clinic.settings``) with everything that matters
set in their environment: clinic.test_settings forces the in-memory email backend,
which a separate process cannot be asked about.
"""

from __future__ import annotations

import email
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager, suppress
from pathlib import Path

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.filebased import EmailBackend as FileEmailBackend

ROOT = Path(__file__).resolve().parent.parent
SEPARATOR = b"\n" + b"-" * 79 + b"\n"


class SlowFileEmailBackend(FileEmailBackend):
    """The file backend, one file per message, after RELIABILITY_EMAIL_DELAY seconds per
    message (an SMTP server taking its time, so a worker can be killed mid-batch)."""

    def send_messages(self, email_messages):
        time.sleep(float(os.environ.get("RELIABILITY_EMAIL_DELAY", "0")) * len(email_messages))
        return super().send_messages(email_messages)

    def _get_filename(self):
        if self._fname is None:
            self._fname = os.path.join(self.file_path, f"{os.getpid()}-{uuid.uuid4().hex}.eml")
        return self._fname


class BlockingEmailBackend(BaseEmailBackend):
    """An in-process backend that holds each send until ``release`` is set, so a test can
    act while a dispatcher is in the middle of a delivery (its row claimed, not committed)."""

    entered = threading.Event()
    release = threading.Event()

    @classmethod
    def reset(cls) -> None:
        cls.entered.clear()
        cls.release.clear()

    def send_messages(self, email_messages):
        type(self).entered.set()
        if not type(self).release.wait(timeout=20):
            raise TimeoutError("the test never released the email")
        return len(email_messages)


def emailed(mail_dir: Path) -> Counter:
    """How many messages each address was sent, read from the files the backend wrote."""
    counts: Counter = Counter()
    for path in Path(mail_dir).glob("*.eml"):
        for chunk in path.read_bytes().split(SEPARATOR):
            if chunk.strip():
                counts[email.message_from_bytes(chunk)["To"]] += 1
    return counts


def wait_for(condition, *, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(settings_dict: dict) -> str:
    """The address of the database this test is using (the test database, not the main one)."""
    user = settings_dict["USER"] or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict["PASSWORD"] else ""
    host = settings_dict["HOST"] or "127.0.0.1"
    port = settings_dict["PORT"] or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


# --- Worker processes ----------------------------------------------------------------------


class Worker:
    """A real ``celery worker`` process in its own process group, logging to a file."""

    def __init__(
        self,
        name: str,
        *,
        workdir: Path,
        database_url: str,
        redis_url: str,
        pool: str = "solo",
        email_delay: float = 0.0,
        beat: bool = False,
        app: str = "clinic",
        extra_env: dict | None = None,
    ):
        self.name = name
        self.log = workdir / f"worker-{name}.log"
        self.mail_dir = workdir / "mail"
        var_dir = workdir / "var"
        self.mail_dir.mkdir(exist_ok=True)
        var_dir.mkdir(exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith("CELERY_")}
        env.update(
            DJANGO_SETTINGS_MODULE="clinic.settings",
            DJANGO_DEBUG="false",
            DJANGO_SECRET_KEY="test-only-secret-key",
            DJANGO_ALLOWED_HOSTS="localhost",
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            DJANGO_EMAIL_BACKEND="tests.reliability_support.SlowFileEmailBackend",
            EMAIL_FILE_PATH=str(self.mail_dir),
            RELIABILITY_EMAIL_DELAY=str(email_delay),
            CLINIC_VAR_DIR=str(var_dir),
            **(extra_env or {}),
        )
        command = [
            sys.executable, "-m", "celery", "-A", app, "worker", f"--pool={pool}", "--concurrency=1",
            "-n", f"{name}@%h", "--loglevel=INFO", "--without-mingle", "--without-gossip", "--without-heartbeat",
        ]  # fmt: skip
        if beat:
            command += ["-B", "-s", str(var_dir / f"beat-{name}")]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 40) -> None:
        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited with {self.process.returncode}:\n{self.output()}")
            return " ready." in self.output()

        wait_for(ready, timeout=timeout, message=f"worker {self.name} to be ready")

    def results(self, task: str) -> list[str]:
        """What each successful run of ``task`` returned, from the worker's log."""
        found = []
        for line in self.output().splitlines():
            if f"Task {task}[" in line and " succeeded in " in line:
                found.append(line.rsplit(": ", 1)[-1].strip())
        return found

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker and its pool children)."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.kill()


# --- Redis ------------------------------------------------------------------------------------


class ThrowawayRedis:
    """A ``redis-server`` of our own on ``port``, without persistence, to kill and restart."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        def up():
            try:
                return redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
            except redis.ConnectionError:
                return False

        wait_for(up, timeout=10, message=f"redis-server on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def broker(url: str):
    """Point this process's Celery app (the one ``task.delay()`` uses) at ``url``."""
    from clinic.celery import app

    def reset():
        # kombu keeps one pool per broker address; the app just stops pointing at it.
        app._pool = None
        app.amqp._producer_pool = None

    before = app.conf.broker_url
    reset()
    app.conf.broker_url = url
    try:
        yield app
    finally:
        reset()
        app.conf.broker_url = before


# --- A Celery app whose beat runs every couple of seconds ----------------------------------


def __getattr__(name: str):
    """``celery -A tests.reliability_support:fast_beat_app``: the project's app and beat
    schedule (the same entries and tasks), every 2 seconds instead of every minute."""
    if name == "fast_beat_app":
        from clinic.celery import app

        app.conf.beat_schedule = {key: {**entry, "schedule": 2.0} for key, entry in app.conf.beat_schedule.items()}
        return app
    raise AttributeError(name)
