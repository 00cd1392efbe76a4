"""Restore a ``backup_db`` dump into an EMPTY PostgreSQL database.

Never over live data: a target that already has tables is refused, whatever the options.
Replacing a database is a human decision, made outside this command (stop the app,
``dropdb`` / ``createdb``, then restore). pg_restore runs in one transaction and stops at
the first error, so a failed restore leaves the target empty. Afterwards the restored
schema is checked against this code's migrations and the rows of every table counted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader

from clinic.management import postgres
from clinic.management.postgres import Target

PG_RESTORE_OPTIONS = ["--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]


def pg_restore_command(target: Target, path: str, *, pg_restore: str = "pg_restore") -> tuple[list[str], dict]:
    return [pg_restore, *PG_RESTORE_OPTIONS, *target.arguments(), path], target.environment()


def refuse_if_not_empty(target: Target, connection) -> None:
    relations = postgres.user_relations(connection)
    if relations:
        shown = ", ".join(relations[:5]) + (", ..." if len(relations) > 5 else "")
        raise CommandError(
            f"Refusing to restore: {target} is not empty ({len(relations)} tables, views or sequences: {shown}). "
            "restore_db only restores into an empty database; it never replaces live data. To replace this "
            "database, stop the application (web, worker, beat), keep a backup of it (manage.py backup_db), then "
            f"`dropdb {target.name}` and `createdb --owner=<app user> {target.name}`, and run restore_db again."
        )


def migration_problems(connection) -> list[str]:
    """What stops this code from running on the restored schema: migrations it has that the
    dump lacks (``migrate --check`` would fail) and ones the dump has that it does not know.

    Read with psycopg from django_migrations, so no Django connection to the target is made.
    A squashed migration counts as applied when everything it replaces is.
    """
    loader = MigrationLoader(None, ignore_no_migrations=True)
    (has_table,) = connection.execute("SELECT to_regclass('django_migrations') IS NOT NULL").fetchone()
    applied = set(connection.execute("SELECT app, name FROM django_migrations").fetchall()) if has_table else set()

    def is_applied(key: tuple[str, str]) -> bool:
        replaces = loader.graph.nodes[key].replaces
        return key in applied or (bool(replaces) and all(tuple(old) in applied for old in replaces))

    unapplied = sorted(key for key in loader.graph.nodes if not is_applied(key))
    known = set(loader.disk_migrations) | {
        tuple(old) for migration in loader.disk_migrations.values() for old in migration.replaces
    }
    unknown = sorted(applied - known)
    problems = []
    if unapplied:
        names = ", ".join(f"{app}.{name}" for app, name in unapplied[:8])
        problems.append(
            f"{len(unapplied)} migration(s) of this code are not applied ({names}"
            f"{', ...' if len(unapplied) > 8 else ''}): the dump is from an older release; run "
            "`manage.py migrate` against it once you have checked it"
        )
    if unknown:
        names = ", ".join(f"{app}.{name}" for app, name in unknown[:8])
        problems.append(
            f"{len(unknown)} applied migration(s) are unknown to this code ({names}"
            f"{', ...' if len(unknown) > 8 else ''}): the dump is from a newer release; deploy that release"
        )
    return problems


class Command(BaseCommand):
    help = (
        "Restore a backup_db dump into an EMPTY PostgreSQL database (the configured one, or "
        "--database-url), then check the migrations and count the rows of every table."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="A dump made by manage.py backup_db (pg_dump --format=custom).")
        parser.add_argument(
            "--database-url",
            metavar="URL",
            help="Restore into this empty database (postgres://user@host:port/name) instead of the configured "
            "one. Keep the password out of the URL: PGPASSWORD or ~/.pgpass are used when it has none.",
        )
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args, path: str, database_url: str | None = None, yes: bool = False, **options) -> None:
        dump = Path(path).expanduser()
        if not dump.is_file():
            raise CommandError(f"{dump} is not a file.")
        if database_url:
            target = Target.from_url(database_url, command="restore_db")
        else:
            target = Target.from_settings(connections[DEFAULT_DB_ALIAS].settings_dict, command="restore_db")
        pg_restore = postgres.find_tool("pg_restore")
        contents = postgres.list_dump(pg_restore, str(dump))

        with target.connect() as connection:
            server_major = postgres.server_major_version(connection)
            refuse_if_not_empty(target, connection)
        client_major = postgres.tool_major_version(pg_restore)
        if server_major > client_major:
            self.stderr.write(
                self.style.WARNING(
                    f"Warning: the server is PostgreSQL {server_major}, newer than pg_restore {client_major} "
                    f"({pg_restore}); if the restore fails, install postgresql-client-{server_major}."
                )
            )
        source_major = postgres.dumped_from_major(contents)
        if source_major is not None and source_major > server_major:
            self.stderr.write(
                self.style.WARNING(
                    f"Warning: the dump comes from PostgreSQL {source_major}, newer than the target server "
                    f"{server_major}; restoring into an older server may fail."
                )
            )

        if not yes:
            self.confirm(f"Restore {dump} into {target}? Type 'yes' to continue: ")

        argv, env = pg_restore_command(target, str(dump), pg_restore=pg_restore)
        result = postgres.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise CommandError(
                f"pg_restore failed; the transaction was rolled back and {target} is still empty.\n"
                f"{result.stderr.strip()}"
            )

        with target.connect() as connection:
            problems = migration_problems(connection)
            counts = postgres.row_counts(connection)
        width = max((len(name) for name in counts), default=0)
        self.stdout.write(f"Restored {dump} into {target}. Rows per table:")
        for name, count in counts.items():
            self.stdout.write(f"  {name:<{width}}  {count:>9}")
        self.stdout.write(f"  {'total':<{width}}  {sum(counts.values()):>9} rows in {len(counts)} tables")
        if problems:
            raise CommandError(
                "The data is restored, but its schema does not match this code:\n  - " + "\n  - ".join(problems)
            )
        self.stdout.write(self.style.SUCCESS("Migrations: the restored schema matches this code (nothing to apply)."))

    def confirm(self, question: str) -> None:
        if not sys.stdin.isatty():
            raise CommandError("Not run from a terminal: pass --yes to confirm the restore.")
        if input(question).strip().lower() != "yes":
            raise CommandError("Restore cancelled.")
