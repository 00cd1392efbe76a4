"""The database's own guards over the audit trail and signed infusion records.

Hand-written triggers rather than django-pgtrigger's: pgtrigger's stand aside for any
session that names them in its ``pgtrigger.ignore`` setting (one ``set_config``, no
privilege needed), and these must not. What they enforce, for every client, the
application, the admin or a plain SQL session:

- the access log, every change-history table and the amendments: no UPDATE, DELETE or
  TRUNCATE;
- the history's context rows (who, from where): never deleted or truncated, and updated
  only as pghistory does while a request runs, adding to what they say (a value once
  written is never changed);
- a signed infusion: never deleted, and changed only in a transaction that has recorded an
  amendment to it (the amendment row gets the transaction's id from the database, not the
  client); its vitals and side effects: never added, changed or removed.

Only a superuser can turn triggers off (``session_replication_role = replica``, as key
rotation does in clinic/encryption.py) or drop them: run the application as a role that
is neither superuser nor owner of these tables.
"""

from django.db import migrations

APPEND_ONLY_TABLES = [
    "audit_accesslog",
    "audit_patientevent",
    "audit_phq9assessmentevent",
    "audit_inductionseriesevent",
    "audit_infusionsessionevent",
    "audit_vitalsignreadingevent",
    "audit_sideeffectevent",
    "audit_infusionamendmentevent",
    "audit_maintenanceplanevent",
    "audit_protocolevent",
    "infusions_infusionamendment",
]

LOCKED = "This infusion record is signed and locked; record a correction as an amendment."

FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION clinic_guard_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'The audit trail cannot be changed or deleted (% on %)', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION clinic_guard_history_context() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.created_at = OLD.created_at AND NOT EXISTS (
        SELECT 1 FROM jsonb_each(OLD.metadata::jsonb) AS old_value
        WHERE old_value.value <> 'null'::jsonb
          AND (NEW.metadata::jsonb -> old_value.key) IS DISTINCT FROM old_value.value
    ) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'The audit trail cannot be changed or deleted (% on %)', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION clinic_guard_amendment_transaction() RETURNS trigger AS $$
BEGIN
    NEW.transaction_id := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION clinic_guard_signed_session() RETURNS trigger AS $$
BEGIN
    IF OLD.signed_at IS NULL THEN
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND EXISTS (
        SELECT 1 FROM infusions_infusionamendment
        WHERE session_id = OLD.id AND transaction_id = pg_current_xact_id()::text::bigint
    ) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '{LOCKED}';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION clinic_guard_signed_session_child() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF EXISTS (SELECT 1 FROM infusions_infusionsession WHERE id = OLD.session_id AND signed_at IS NOT NULL) THEN
            RAISE EXCEPTION '{LOCKED}';
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF EXISTS (SELECT 1 FROM infusions_infusionsession WHERE id = NEW.session_id AND signed_at IS NOT NULL) THEN
            RAISE EXCEPTION '{LOCKED}';
        END IF;
        RETURN NEW;
    END IF;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;
"""


def _append_only(table: str) -> str:
    return f"""
CREATE TRIGGER clinic_guard_append_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION clinic_guard_append_only();
CREATE TRIGGER clinic_guard_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION clinic_guard_append_only();
"""


TRIGGERS = (
    "".join(_append_only(table) for table in APPEND_ONLY_TABLES)
    + """
CREATE TRIGGER clinic_guard_history_context BEFORE UPDATE OR DELETE ON pghistory_context
    FOR EACH ROW EXECUTE FUNCTION clinic_guard_history_context();
CREATE TRIGGER clinic_guard_no_truncate BEFORE TRUNCATE ON pghistory_context
    FOR EACH STATEMENT EXECUTE FUNCTION clinic_guard_append_only();
CREATE TRIGGER clinic_guard_amendment_transaction BEFORE INSERT ON infusions_infusionamendment
    FOR EACH ROW EXECUTE FUNCTION clinic_guard_amendment_transaction();
CREATE TRIGGER clinic_guard_signed_session BEFORE UPDATE OR DELETE ON infusions_infusionsession
    FOR EACH ROW EXECUTE FUNCTION clinic_guard_signed_session();
CREATE TRIGGER clinic_guard_signed_session BEFORE INSERT OR UPDATE OR DELETE ON infusions_vitalsignreading
    FOR EACH ROW EXECUTE FUNCTION clinic_guard_signed_session_child();
CREATE TRIGGER clinic_guard_signed_session BEFORE INSERT OR UPDATE OR DELETE ON infusions_sideeffect
    FOR EACH ROW EXECUTE FUNCTION clinic_guard_signed_session_child();
"""
)

# The guard of 0004 (deletes of context rows) is folded into the one above.
DROP_EARLIER = """
DROP TRIGGER IF EXISTS audit_refuse_context_delete ON pghistory_context;
DROP FUNCTION IF EXISTS audit_refuse_context_delete();
"""

REVERSE = (
    "".join(
        f"DROP TRIGGER IF EXISTS clinic_guard_append_only ON {table};"
        f"DROP TRIGGER IF EXISTS clinic_guard_no_truncate ON {table};"
        for table in APPEND_ONLY_TABLES
    )
    + """
DROP TRIGGER IF EXISTS clinic_guard_history_context ON pghistory_context;
DROP TRIGGER IF EXISTS clinic_guard_no_truncate ON pghistory_context;
DROP TRIGGER IF EXISTS clinic_guard_amendment_transaction ON infusions_infusionamendment;
DROP TRIGGER IF EXISTS clinic_guard_signed_session ON infusions_infusionsession;
DROP TRIGGER IF EXISTS clinic_guard_signed_session ON infusions_vitalsignreading;
DROP TRIGGER IF EXISTS clinic_guard_signed_session ON infusions_sideeffect;
DROP FUNCTION IF EXISTS clinic_guard_append_only();
DROP FUNCTION IF EXISTS clinic_guard_history_context();
DROP FUNCTION IF EXISTS clinic_guard_amendment_transaction();
DROP FUNCTION IF EXISTS clinic_guard_signed_session();
DROP FUNCTION IF EXISTS clinic_guard_signed_session_child();
"""
)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_EARLIER + FUNCTIONS + TRIGGERS, params=None)


def reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REVERSE, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_amendment_transaction_id"),
        ("infusions", "0004_amendment_transaction_id"),
        ("pghistory", "0007_auto_20250421_0444"),
    ]

    operations = [migrations.RunPython(forward, reverse)]
