"""The change history's context rows (who, from where) cannot be deleted either.

pghistory updates a context row while a request runs (it adds to its metadata), so only
DELETE is refused here; the event rows that point at a context are append-only through
their own triggers.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION audit_refuse_context_delete() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'The audit trail cannot be deleted (% table)', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_refuse_context_delete BEFORE DELETE ON pghistory_context
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_context_delete();
"""

REVERSE = """
DROP TRIGGER IF EXISTS audit_refuse_context_delete ON pghistory_context;
DROP FUNCTION IF EXISTS audit_refuse_context_delete();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REVERSE, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_change_history"),
        ("pghistory", "0007_auto_20250421_0444"),
    ]

    operations = [migrations.RunPython(forward, reverse)]
