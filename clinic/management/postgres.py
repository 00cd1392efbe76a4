"""PostgreSQL client helpers shared by ``backup_db`` and ``restore_db``.

The connection is built from a Django ``DATABASES`` entry (or a ``postgres://`` URL) and
handed to pg_dump / pg_restore as host, port, user and database arguments; the password
travels only in the child process's ``PGPASSWORD`` (never on a command line, where other
local users could read it in ``ps``). Without a password in the settings, libpq's own
``PGPASSWORD`` or ``~/.pgpass`` apply.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import environ
import psycopg
from django.core.management.base import CommandError
from psycopg import sql

POSTGRES_ENGINES = {"django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis"}

#: Connection OPTIONS that libpq tools read from the environment instead.
OPTION_ENVIRONMENT = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}

#: Schemas that belong to PostgreSQL itself, not to the application.
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


def sqlite_message(command: str) -> str:
    return (
        f"{command} works with PostgreSQL only, and this configuration uses SQLite (the embedded "
        "development database under var/). Stop `make run`, then copy var/clinic.sqlite3 (or use "
        "`sqlite3 var/clinic.sqlite3 '.backup var/clinic-copy.sqlite3'`); production data lives in "
        "PostgreSQL: set DATABASE_URL=postgres://..."
    )


@dataclass(frozen=True)
class Target:
    """Where a PostgreSQL database is, as the command-line tools and psycopg need it."""

    name: str
    user: str = ""
    password: str = field(default="", repr=False)
    host: str = ""
    port: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings_dict: Mapping[str, Any], *, command: str) -> Target:
        engine = settings_dict.get("ENGINE", "")
        if engine not in POSTGRES_ENGINES:
            if "sqlite" in engine:
                raise CommandError(sqlite_message(command))
            raise CommandError(f"{command} works with PostgreSQL only, not {engine or 'an unset ENGINE'}.")
        if not settings_dict.get("NAME"):
            raise CommandError("The database settings have no NAME.")
        return cls(
            name=str(settings_dict["NAME"]),
            user=str(settings_dict.get("USER") or ""),
            password=str(settings_dict.get("PASSWORD") or ""),
            host=str(settings_dict.get("HOST") or ""),
            port=str(settings_dict.get("PORT") or ""),
            options=dict(settings_dict.get("OPTIONS") or {}),
        )

    @classmethod
    def from_url(cls, url: str, *, command: str) -> Target:
        try:
            config = environ.Env.db_url_config(url)
        except Exception as error:  # django-environ raises several kinds for a bad URL
            raise CommandError(f"Not a database URL ({type(error).__name__}).") from None
        return cls.from_settings(config, command=command)

    # --- for pg_dump / pg_restore ------------------------------------------------------

    def arguments(self) -> list[str]:
        """Connection arguments (never the password) and ``--no-password``: a tool that
        would need to ask for one fails instead of waiting for a terminal."""
        args = ["--no-password"]
        if self.host:
            args += ["--host", self.host]
        if self.port:
            args += ["--port", self.port]
        if self.user:
            args += ["--username", self.user]
        return [*args, "--dbname", self.name]

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        if self.password:
            env["PGPASSWORD"] = self.password
        for option, variable in OPTION_ENVIRONMENT.items():
            if self.options.get(option) not in (None, ""):
                env[variable] = str(self.options[option])
        env.setdefault("PGAPPNAME", "clinic-backup")
        return env

    # --- for psycopg ----------------------------------------------------------------------

    def connect(self, **kwargs: Any) -> psycopg.Connection:
        params = {option: self.options[option] for option in OPTION_ENVIRONMENT if option in self.options}
        params.setdefault("connect_timeout", 10)
        try:
            return psycopg.connect(
                dbname=self.name,
                user=self.user or None,
                password=self.password or None,
                host=self.host or None,
                port=self.port or None,
                autocommit=True,
                **params,
                **kwargs,
            )
        except psycopg.OperationalError as error:
            raise CommandError(f"Cannot connect to {self}: {first_line(str(error))}") from None

    def __str__(self) -> str:
        where = f"{self.host or 'the local socket'}{':' + self.port if self.port else ''}"
        return f"database {self.name!r} on {where}" + (f" as {self.user!r}" if self.user else "")


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text.strip())


def find_tool(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise CommandError(
            f"{tool} is not on PATH. Install the PostgreSQL client of the server's version "
            "(Debian/Ubuntu: apt-get install postgresql-client-15)."
        )
    return path


def tool_major_version(tool_path: str) -> int:
    """15 for ``pg_dump (PostgreSQL) 15.20 (Debian ...)``."""
    output = subprocess.run([tool_path, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", output)
    if match is None:
        raise CommandError(f"Cannot tell the version of {tool_path} ({output.strip() or 'no output'}).")
    return int(match.group(1))


def server_major_version(connection: psycopg.Connection) -> int:
    return connection.info.server_version // 10000  # 150020 -> 15


def check_client_not_older(*, tool: str, tool_path: str, client_major: int, server_major: int) -> None:
    """pg_dump refuses a server newer than itself; say so before it does, and how to fix it."""
    if server_major > client_major:
        raise CommandError(
            f"The PostgreSQL server is version {server_major}, newer than {tool} {client_major} found at "
            f"{tool_path}. Install the version {server_major} client (Debian/Ubuntu: apt-get install "
            f"postgresql-client-{server_major}) and put it first on PATH."
        )


def user_relations(connection: psycopg.Connection) -> list[str]:
    """Tables, views and sequences outside PostgreSQL's own schemas, as schema.name."""
    rows = connection.execute(
        """
        SELECT n.nspname || '.' || c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
        ORDER BY c.relkind <> 'r', 1
        """,
        [list(SYSTEM_SCHEMAS)],
    ).fetchall()
    return [name for (name,) in rows]


def user_tables(connection: psycopg.Connection) -> list[tuple[str, str]]:
    """Every application table (schema, name), from information_schema."""
    rows = connection.execute(
        """
        SELECT table_schema, table_name FROM information_schema.tables
        WHERE table_type = 'BASE TABLE' AND table_schema <> ALL(%s) AND table_schema NOT LIKE 'pg\\_%%'
        ORDER BY table_schema, table_name
        """,
        [list(SYSTEM_SCHEMAS)],
    ).fetchall()
    return [(schema, name) for schema, name in rows]


def row_counts(connection: psycopg.Connection) -> dict[str, int]:
    counts = {}
    for schema, name in user_tables(connection):
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
        label = name if schema == "public" else f"{schema}.{name}"
        counts[label] = connection.execute(query).fetchone()[0]
    return counts


def run(argv: list[str], *, env: Mapping[str, str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=dict(env), check=False, **kwargs)


def list_dump(pg_restore: str, path: str) -> list[str]:
    """The dump's table of contents (``pg_restore --list``), or CommandError if unreadable."""
    result = subprocess.run([pg_restore, "--list", path], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = first_line(result.stderr) or f"exit status {result.returncode}"
        hint = ""
        if "unsupported version" in result.stderr:
            hint = (
                " The dump was made by a newer pg_dump than this pg_restore: install the newer "
                "PostgreSQL client and put it first on PATH."
            )
        elif "text format dump" in result.stderr:
            hint = " It is a plain SQL dump: restore_db takes the custom format that backup_db writes."
        elif "valid archive" in result.stderr or "magic string" in result.stderr:
            hint = " It is not a pg_dump custom-format file (make one with `manage.py backup_db`)."
        raise CommandError(f"{path} cannot be read by pg_restore: {message}.{hint}")
    return result.stdout.splitlines()


def dumped_from_major(contents: list[str]) -> int | None:
    """The server major version a dump came from, from its ``--list`` header."""
    for line in contents:
        match = re.match(r";\s+Dumped from database version:\s+(\d+)", line)
        if match:
            return int(match.group(1))
    return None


def toc_entries(contents: list[str]) -> list[str]:
    return [line for line in contents if line.strip() and not line.startswith(";")]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
