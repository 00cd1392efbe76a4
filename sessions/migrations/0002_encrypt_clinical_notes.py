"""Encrypt the free text of induction series and infusions, and amendments' changes.

The columns become text (``changes`` too: the whole JSON document is one encrypted
value), then the values already stored are encrypted with the first key of
CLINIC_FIELD_ENCRYPTION_KEYS. Reversed, the values are decrypted first.
"""

import clinic.encryption
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('infusions', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='inductionseries',
            name='discontinued_reason',
            field=clinic.encryption.EncryptedTextField(blank=True),
        ),
        migrations.AlterField(
            model_name='infusionamendment',
            name='changes',
            field=clinic.encryption.EncryptedJSONField(default=dict),
        ),
        migrations.AlterField(
            model_name='infusionamendment',
            name='reason',
            field=clinic.encryption.EncryptedTextField(),
        ),
        migrations.AlterField(
            model_name='infusionsession',
            name='notes',
            field=clinic.encryption.EncryptedTextField(blank=True, verbose_name='clinical notes'),
        ),
        migrations.AlterField(
            model_name='infusionsession',
            name='status_reason',
            field=clinic.encryption.EncryptedCharField(blank=True, help_text='Why a session was cancelled or missed.', max_length=200),
        ),
        migrations.AlterField(
            model_name='sideeffect',
            name='note',
            field=clinic.encryption.EncryptedCharField(blank=True, max_length=300),
        ),
        clinic.encryption.encrypt_existing_values('infusions', 'InductionSeries', 'discontinued_reason'),
        clinic.encryption.encrypt_existing_values('infusions', 'InfusionSession', 'notes', 'status_reason'),
        clinic.encryption.encrypt_existing_values('infusions', 'SideEffect', 'note'),
        clinic.encryption.encrypt_existing_values('infusions', 'InfusionAmendment', 'reason', 'changes'),
    ]
