"""Back up the clinic's PostgreSQL database with pg_dump (custom format).

The file holds every patient's record: it is created with mode 0600 (owner only) in a
directory created with mode 0700, written under a ``.partial`` name and renamed only
once ``pg_restore --list`` has read it back. Restore it with ``manage.py restore_db``.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from clinic.management import postgres
from clinic.management.postgres import Target

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def pg_dump_command(settings_dict, *, pg_dump: str = "pg_dump") -> tuple[list[str], dict[str, str]]:
    """pg_dump's arguments and environment for a ``DATABASES`` entry (the dump goes to
    stdout). The password is only in the environment. CommandError on SQLite."""
    target = Target.from_settings(settings_dict, command="backup_db")
    return [pg_dump, "--format=custom", *target.arguments()], target.environment()


def default_path(database_name: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(settings.CLINIC_BACKUP_DIR) / f"{database_name}-{stamp}.dump"


class Command(BaseCommand):
    help = (
        "Back up the configured PostgreSQL database with pg_dump --format=custom into "
        "CLINIC_BACKUP_DIR (default var/backups/), mode 0600, verified with pg_restore --list."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output",
            metavar="PATH",
            help="Write the dump here instead of a timestamped file in CLINIC_BACKUP_DIR (never overwritten).",
        )

    def handle(self, *args, output: str | None = None, **options) -> None:
        settings_dict = connections[DEFAULT_DB_ALIAS].settings_dict
        target = Target.from_settings(settings_dict, command="backup_db")
        pg_dump = postgres.find_tool("pg_dump")
        pg_restore = postgres.find_tool("pg_restore")
        with target.connect() as connection:
            server_major = postgres.server_major_version(connection)
        postgres.check_client_not_older(
            tool="pg_dump", tool_path=pg_dump, client_major=postgres.tool_major_version(pg_dump),
            server_major=server_major,
        )  # fmt: skip

        path = Path(output).expanduser() if output else default_path(target.name)
        if not output:
            path.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        elif not path.parent.is_dir():
            raise CommandError(f"{path.parent} is not a directory.")
        if path.exists():
            raise CommandError(f"{path} already exists; a backup never overwrites a file.")
        partial = path.with_name(path.name + ".partial")

        argv, env = pg_dump_command(settings_dict, pg_dump=pg_dump)
        try:
            # Created owner-only before a byte is written; pg_dump writes to our descriptor.
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            raise CommandError(f"{partial} exists: another backup is running, or one failed (remove it).") from None
        try:
            try:
                os.fchmod(fd, FILE_MODE)  # whatever the umask
                result = postgres.run(argv, env=env, stdout=fd, stderr=subprocess.PIPE, text=True)
            finally:
                os.close(fd)
            if result.returncode != 0:
                raise CommandError(f"pg_dump failed for {target}: {result.stderr.strip() or result.returncode}")
            contents = postgres.list_dump(pg_restore, str(partial))
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

        entries = postgres.toc_entries(contents)
        tables = sum(1 for line in entries if " TABLE DATA " in line)
        size = path.stat().st_size
        self.stdout.write(
            self.style.SUCCESS(f"Backup written: {path} ({postgres.human_size(size)})")
            + f"\n  {target}; {len(entries)} entries, {tables} tables of data; read back with pg_restore --list."
            + "\n  It holds protected health information: keep it owner-only and encrypted at rest."
        )
