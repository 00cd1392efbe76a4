"""Load a large, realistic clinic fast, for load tests and benchmarks (PostgreSQL only).

    manage.py seed_scale [--patients 20000] [--seed N] [--password P] [--replace] [--no-replica]

20,000 patients by default (MRNs ``SC-1000001`` ...), with intakes, induction series,
infusions with doses, vitals, side effects, discharges and signatures, PHQ-9s at every
visit, maintenance plans and boosters over up to five years back from today: see
patients/scale.py for what a record looks like. Rows are built in Python and written with
COPY, in one transaction: all or nothing.

The load is a data import. When the database role may set ``session_replication_role``
(a superuser, such as the local ``postgres``), it runs in replica mode: no change-history
rows (they would double every insert), no guard triggers and no foreign-key triggers. The
rows are consistent by construction, and every foreign key of the loaded tables is
checked before committing; check and unique constraints hold as always. Otherwise, or
with ``--no-replica``, the triggers stay on: sessions go in unsigned, then their vitals and
side effects, then the signatures (the guards refuse vitals on a signed record), and the
change history records it all under the context ``command=seed_scale``.

Safety: it refuses a database that already has patients unless ``--replace`` is given,
which deletes the earlier scale data only (``SC-`` patients, what hangs off them, and
their portal accounts; the change history and the access log keep what they recorded).
Deleting signed infusions needs replica mode, so without it ``--replace`` is refused.

Logins (password ``--password``, default ``scale-benchmark``): ``scale_patient`` (portal
account of the patient with five full years of history), ``scale_clinician`` and
``scale_scheduler``; the other staff are ``scale_clinician_2`` ... ``scale_clinician_20``
and ``scale_scheduler_2`` ... ``scale_scheduler_5``, with the same password.
"""

from __future__ import annotations

import contextlib
import time

import pghistory
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from maintenance import reminders
from patients import scale
from patients.models import Patient, PHQ9Assessment

DEFAULT_PATIENTS = 20_000
DEFAULT_SEED = 20260101
DEFAULT_PASSWORD = "scale-benchmark"


class Command(BaseCommand):
    help = (
        "Load a large realistic clinic with COPY (default 20,000 patients, five years of care) for "
        "benchmarks. PostgreSQL only; refuses a database with patients unless --replace."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--patients", type=int, default=DEFAULT_PATIENTS, help="How many (default 20,000).")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Random seed: same seed, same clinic.")
        parser.add_argument(
            "--password", default=DEFAULT_PASSWORD, help=f"Password of the scale logins (default {DEFAULT_PASSWORD})."
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help=f"Delete the earlier scale data ({scale.MRN_PREFIX} patients) first; other patients stay.",
        )
        parser.add_argument(
            "--no-replica",
            action="store_true",
            help="Keep the triggers on (change history written, guards checked), as a role that is not a "
            "superuser must; slower, and --replace is refused.",
        )

    def handle(self, *args, **options) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                f"seed_scale loads with PostgreSQL COPY; this database is {connection.vendor}. "
                "Point DATABASE_URL at a PostgreSQL database made for the benchmark."
            )
        patients = options["patients"]
        if patients < 1:
            raise CommandError("--patients must be at least 1.")
        replica = not options["no_replica"] and scale.replica_allowed(connection)
        existing = Patient.objects.count()
        earlier = Patient.objects.filter(mrn__startswith=scale.MRN_PREFIX).count()
        if existing and not options["replace"]:
            raise CommandError(
                f"This database already has {existing} patients ({earlier} of them from an earlier seed_scale "
                f"run). Use --replace to delete the earlier scale data ({scale.MRN_PREFIX} patients and their "
                "records) and load again; other patients are left as they are."
            )
        if options["replace"] and earlier and not replica:
            why = "--no-replica was given" if options["no_replica"] else "this database role is not a superuser"
            raise CommandError(
                f"--replace needs replica mode ({why}): the earlier scale data holds signed infusion records, "
                "which the database's guards refuse to delete. Run as a superuser (the role that may SET "
                "session_replication_role), or drop and recreate the benchmark database."
            )

        self.stdout.write(
            f"seed_scale: {patients:,} patients, seed {options['seed']}, "
            + (
                "replica mode (a data import: no change-history rows, no guard or foreign-key triggers; the rows "
                "are consistent by construction and their foreign keys are checked before committing)."
                if replica
                else "triggers on (change history written, guards checked; sessions are signed after their vitals)."
            )
        )
        started = time.perf_counter()
        stats = scale.Stats()
        with pghistory.context(command="seed_scale"), transaction.atomic():
            with connection.cursor() as cursor:
                # Also sets the change-history context for the COPYs below (triggers on).
                cursor.execute("SET LOCAL statement_timeout = 0")
                if replica:
                    cursor.execute("SET LOCAL session_replication_role = replica")
                else:
                    scale.spare_trigger_exceptions(cursor)
            try:
                delete_started = time.perf_counter()
                deleted = scale.delete_scale_data(connection) if options["replace"] and earlier else {}
                delete_seconds = time.perf_counter() - delete_started
                try:
                    setup, usernames = scale.prepare(
                        connection, password=options["password"], today=timezone.localdate(), now=timezone.now()
                    )
                except ValueError as error:
                    raise CommandError(str(error)) from None
                generator = scale.ClinicGenerator(setup, patients=patients, seed=options["seed"], stats=stats)
                result = scale.load(connection, generator, with_triggers=not replica)
                check_started = time.perf_counter()
                if replica:
                    dangling = scale.dangling_references(connection)
                    if dangling:
                        raise CommandError(f"Rows name missing records, nothing was loaded: {dangling}")
                check_seconds = time.perf_counter() - check_started
                # The recent item-9 answers nobody has acknowledged alert the clinicians, as
                # they would have when entered.
                for assessment in PHQ9Assessment.objects.filter(pk__in=result.open_safety_alerts).select_related(
                    "patient__primary_clinician"
                ):
                    reminders.raise_safety_alert(assessment)
            finally:
                if replica:
                    # Triggers back on also when this runs inside a larger transaction.
                    with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                        cursor.execute("SET LOCAL session_replication_role = origin")
        analyze_started = time.perf_counter()
        if not connection.in_atomic_block:
            scale.analyze(connection)
        analyze_seconds = time.perf_counter() - analyze_started
        total = time.perf_counter() - started
        self._report(
            options,
            deleted,
            result,
            stats,
            usernames,
            total=total,
            delete=delete_seconds,
            check=check_seconds,
            analyze=analyze_seconds,
        )

    def _report(self, options, deleted, result, stats, usernames, *, total, delete, check, analyze) -> None:
        out = self.stdout
        if deleted:
            out.write("Deleted the earlier scale data: " + ", ".join(f"{t} {n:,}" for t, n in sorted(deleted.items())))
        out.write(
            self.style.SUCCESS(
                f"Loaded in {total:.1f} s ("
                + (f"delete {delete:.1f} s, " if deleted else "")
                + f"generate {result.generate_seconds:.1f} s, copy {result.copy_seconds:.1f} s"
                + (f", sign {result.sign_seconds:.1f} s" if result.sign_seconds else "")
                + f", check {check:.1f} s, analyze {analyze:.1f} s)."
            )
        )
        width = max(len(table) for table in result.rows)
        for _name, table, _columns in scale.TABLES:
            out.write(f"  {table:<{width}}  {result.rows[table]:>10,}")
        out.write(f"  {'sum':<{width}}  {sum(result.rows.values()):>10,}")
        out.write(
            "Courses: " + ", ".join(f"{course} {count:,}" for course, count in sorted(stats.courses.items())) + "."
        )
        out.write(
            f"Encrypted fields: {stats.encrypted_values:,} values encrypted in {stats.encrypt_seconds:.1f} s "
            "(contact details of most patients, notes on a quarter of the infusions, reasons and safety actions)."
        )
        out.write(f"Unacknowledged item-9 answers (safety alerts raised): {len(result.open_safety_alerts)}.")
        mrn, name = stats.five_year_patient
        password = options["password"]
        out.write(f"Logins (password {password!r}):")
        out.write(f"  {scale.PORTAL_USERNAME:<16} portal account of {name} ({mrn}), five full years of history")
        out.write(f"  {scale.CLINICIAN_USERNAME:<16} clinician (also {', '.join(usernames['clinician'][1:3])} ...)")
        out.write(f"  {scale.SCHEDULER_USERNAME:<16} scheduler (also {', '.join(usernames['scheduler'][1:3])} ...)")
