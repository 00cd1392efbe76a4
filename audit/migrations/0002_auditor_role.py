"""The auditor role: reads the audit trail and nothing else (see patients/access.py)."""

from django.db import migrations

ROLE = "auditor"


def create_role(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name=ROLE)


def remove_role(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=ROLE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_access_log"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_role, remove_role)]
