"""Encrypt maintenance plans' scheduling notes.

The column becomes text, then the notes already stored are encrypted with the first key
of CLINIC_FIELD_ENCRYPTION_KEYS. Reversed, they are decrypted first.
"""

import clinic.encryption
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('maintenance', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='maintenanceplan',
            name='notes',
            field=clinic.encryption.EncryptedTextField(blank=True, verbose_name='scheduling notes'),
        ),
        clinic.encryption.encrypt_existing_values('maintenance', 'MaintenancePlan', 'notes'),
    ]
