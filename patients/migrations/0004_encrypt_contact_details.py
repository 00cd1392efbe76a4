"""Encrypt patients' contact details and the action taken on a safety alert.

The columns become text (a Fernet token is longer than the plaintext's max_length, which
forms and the API still enforce), then the values already stored are encrypted with the
first key of CLINIC_FIELD_ENCRYPTION_KEYS. Reversed, the values are decrypted first.
"""

import clinic.encryption
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('patients', '0003_patient_accepts_email_reminders'),
    ]

    operations = [
        migrations.AlterField(
            model_name='patient',
            name='address',
            field=clinic.encryption.EncryptedTextField(blank=True),
        ),
        migrations.AlterField(
            model_name='patient',
            name='email',
            field=clinic.encryption.EncryptedEmailField(blank=True, max_length=254),
        ),
        migrations.AlterField(
            model_name='patient',
            name='emergency_contact_name',
            field=clinic.encryption.EncryptedCharField(blank=True, max_length=200),
        ),
        migrations.AlterField(
            model_name='patient',
            name='emergency_contact_phone',
            field=clinic.encryption.EncryptedCharField(blank=True, max_length=32),
        ),
        migrations.AlterField(
            model_name='patient',
            name='phone',
            field=clinic.encryption.EncryptedCharField(blank=True, max_length=32),
        ),
        migrations.AlterField(
            model_name='phq9assessment',
            name='safety_action',
            field=clinic.encryption.EncryptedTextField(blank=True, verbose_name='action taken'),
        ),
        clinic.encryption.encrypt_existing_values(
            'patients', 'Patient', 'email', 'phone', 'address', 'emergency_contact_name', 'emergency_contact_phone'
        ),
        clinic.encryption.encrypt_existing_values('patients', 'PHQ9Assessment', 'safety_action'),
    ]
