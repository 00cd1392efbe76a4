"""Field-level encryption at rest: patients' contact details and free-text clinical notes.

The fields are django-fernet-encrypted-fields' (Fernet: AES-128-CBC with an HMAC-SHA256,
a fresh IV per value, stored as text), changed where the library's own behaviour does
not suit clinical records:

* The keys are ``CLINIC_FIELD_ENCRYPTION_KEYS`` (clinic/settings.py), used as they are:
  the first encrypts, all decrypt. The library derives its key from ``SECRET_KEY``, so
  rotating the secret key would make every encrypted value unreadable.
* An empty value is stored as the empty string, not encrypted: the library stores NULL,
  which the NOT NULL columns refuse, and the check constraints that say "a reason is
  given" (``~Q(reason="")``) keep working. That a field is empty is all it shows.
* A value that cannot be decrypted (a key missing from the list) raises
  ``DecryptionError``: the library returns the ciphertext as if it were the value, and
  after one validation error it stops decrypting that field for the life of the process.
* Filtering or searching on an encrypted field raises ``FieldError``: each value has its
  own IV, so ``email="a@b.c"`` or ``notes__icontains`` would silently match nothing. Only
  ``isnull`` and equality with the empty string (the constraints') are allowed.

``EncryptedJSONField`` encrypts the whole JSON document as one value: the library's
encrypts each leaf as a string, so numbers, true/false and null would come back as text.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db import DatabaseError, migrations, models, transaction
from django.db import connection as default_connection
from django.db.models.lookups import Exact, IsNull
from encrypted_fields import fields as library


class DecryptionError(RuntimeError):
    """A stored value cannot be decrypted with any key of CLINIC_FIELD_ENCRYPTION_KEYS."""


@functools.lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    """The configured keys: the first encrypts, every one is tried to decrypt."""
    return _fernet(tuple(settings.CLINIC_FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError) as error:
        raise DecryptionError(
            "A stored value cannot be decrypted with CLINIC_FIELD_ENCRYPTION_KEYS: the key it was "
            "encrypted with is not in the list (or the value was never encrypted)."
        ) from error


def is_encrypted(value: str) -> bool:
    """Whether ``value`` is a token the configured keys decrypt."""
    try:
        decrypt(value)
    except DecryptionError:
        return False
    return True


class _EmptyOnlyExact(Exact):
    """``field=""`` (the check constraints' "nothing given"): a stored empty string is
    the only value equality can find; anything else is refused rather than never found."""

    def get_prep_lookup(self):
        if self.rhs not in ("", None):
            raise FieldError(f"{self.lhs.output_field} is encrypted: it can only be compared with the empty string.")
        return super().get_prep_lookup()


class EncryptedFieldMixin:
    """Overrides of the library's mixin (see the module's docstring); comes before it."""

    @property
    def keys(self) -> list[bytes]:
        # Never the library's keys derived from SECRET_KEY, even if something asks for them.
        return [key.encode("ascii") for key in settings.CLINIC_FIELD_ENCRYPTION_KEYS]

    @property
    def f(self) -> MultiFernet:
        return fernet()

    def get_prep_value(self, value: Any) -> Any:
        # The plain field's preparation (str for text), skipping the library's encryption.
        value = super(library.EncryptedFieldMixin, self).get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(self._serialize(value))

    def from_db_value(self, value: Any, expression, connection) -> Any:
        if value is None or value == "":
            return value
        try:
            return self._deserialize(decrypt(value))
        except DecryptionError as error:
            raise DecryptionError(f"{self}: {error}") from None

    def to_python(self, value: Any) -> Any:
        # Values reaching to_python (forms, fixtures, full_clean) are plaintext: never decrypt them.
        return super(library.EncryptedFieldMixin, self).to_python(value)

    def clean(self, value: Any, model_instance: models.Model | None) -> Any:
        # Skips the library's clean(), whose flag on the shared field is left set by a
        # validation error and stops decryption for the rest of the process.
        return super(library.EncryptedFieldMixin, self).clean(value, model_instance)

    def get_lookup(self, lookup_name: str):
        if lookup_name == "isnull":
            return IsNull
        if lookup_name == "exact":
            return _EmptyOnlyExact
        if lookup_name in ("df", "ndf"):
            # "IS [NOT] DISTINCT FROM" between a row's OLD and NEW ciphertext: the change
            # history's triggers ask whether a column was written (audit/history.py).
            return super().get_lookup(lookup_name)
        raise FieldError(f"{self} is encrypted: it cannot be filtered, searched or compared (__{lookup_name}).")

    def get_transform(self, lookup_name: str):
        raise FieldError(f"{self} is encrypted: it cannot be filtered, searched or compared (__{lookup_name}).")

    def _serialize(self, value: Any) -> str:
        return str(value)

    def _deserialize(self, plaintext: str) -> Any:
        return plaintext


class EncryptedCharField(EncryptedFieldMixin, library.EncryptedCharField):
    """A CharField stored encrypted in a text column; max_length is still validated."""


class EncryptedTextField(EncryptedFieldMixin, library.EncryptedTextField):
    pass


class EncryptedEmailField(EncryptedFieldMixin, library.EncryptedEmailField):
    """An EmailField (address validation, max_length 254) stored encrypted in a text column."""


class EncryptedJSONField(EncryptedFieldMixin, library.EncryptedJSONField):
    """A JSONField whose whole document is encrypted into a text column: values keep their types."""

    def get_internal_type(self) -> str:
        return "TextField"

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        return encrypt(self._serialize(value))

    def _serialize(self, value: Any) -> str:
        return json.dumps(value, cls=self.encoder)

    def _deserialize(self, plaintext: str) -> Any:
        return json.loads(plaintext, cls=self.decoder)


# --- Rewriting stored values: the migrations that encrypt, and key rotation ------------


def _rewrite_columns(
    connection, table: str, pk_column: str, columns: Iterable[str], change: Callable[[str], str]
) -> int:
    """Apply ``change`` to every non-empty value of ``columns`` in ``table``, with the
    database's own text (no field conversion); returns the number of rows rewritten."""
    quote = connection.ops.quote_name
    columns = list(columns)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote(pk_column)}, {', '.join(map(quote, columns))} FROM {quote(table)}{lock}")
        # A clinic's rows fit in memory; each is read once and written once.
        updates = []
        for pk, *values in cursor.fetchall():
            changed = [value if value is None or value == "" else change(value) for value in values]
            if changed != values:
                updates.append([*changed, pk])
        # One UPDATE per batch of rows (far fewer round trips than one per row).
        assignments = ", ".join(f"{quote(column)} = v.{quote(column)}" for column in columns)
        names = ", ".join(quote(column) for column in columns)
        row = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
        for start in range(0, len(updates), _REWRITE_BATCH):
            batch = updates[start : start + _REWRITE_BATCH]
            cursor.execute(
                f"UPDATE {quote(table)} AS t SET {assignments} "
                f"FROM (VALUES {', '.join([row] * len(batch))}) AS v({names}, pk) "
                f"WHERE t.{quote(pk_column)} = v.pk",
                [value for values in batch for value in values],
            )
    return len(updates)


_REWRITE_BATCH = 500


def encrypt_existing_values(app_label: str, model_name: str, *field_names: str) -> migrations.RunPython:
    """The migration step that encrypts the values a model stored before its fields were
    encrypted (after the AlterFields: the columns must be text first). Reversed, it
    decrypts them (before the AlterFields are reversed)."""

    def rewrite(apps, schema_editor, change: Callable[[str], str]) -> None:
        model = apps.get_model(app_label, model_name)
        columns = [model._meta.get_field(name).column for name in field_names]
        _rewrite_columns(schema_editor.connection, model._meta.db_table, model._meta.pk.column, columns, change)

    def forwards(apps, schema_editor) -> None:
        # Values already encrypted are left alone, so running it twice does no harm.
        rewrite(apps, schema_editor, lambda value: value if is_encrypted(value) else encrypt(value))

    def backwards(apps, schema_editor) -> None:
        rewrite(apps, schema_editor, decrypt)

    return migrations.RunPython(forwards, backwards, elidable=False)


def encrypted_columns() -> dict[type[models.Model], list[str]]:
    """Every model with encrypted fields, and their columns in its own table."""
    from django.apps import apps

    found = {}
    for model in apps.get_models():
        if model._meta.proxy:
            continue
        columns = [
            field.column for field in model._meta.local_concrete_fields if isinstance(field, EncryptedFieldMixin)
        ]
        if columns:
            found[model] = columns
    return found


def rotate_keys(connection=default_connection) -> int:
    """Re-encrypt every stored value with the first key of CLINIC_FIELD_ENCRYPTION_KEYS.

    After putting a new key first, run this; once it has finished, the old keys can be
    removed from the list. Rows are locked while they are rewritten. Returns the number
    of rows rewritten.
    """
    keys = fernet()

    def rotate(token: str) -> str:
        try:
            return keys.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError) as error:
            raise DecryptionError(
                "A stored value cannot be decrypted with CLINIC_FIELD_ENCRYPTION_KEYS: nothing was rotated."
            ) from error

    rewritten = 0
    # Rotation changes the ciphertext, never the plaintext. It is the one rewrite allowed
    # past the database's triggers: the append-only audit trail (whose old rows hold values
    # under the old keys too), the signed-record lock, and the history triggers themselves
    # (a rotation is not a change to anyone's record). Replica mode turns triggers off for
    # this transaction only, and only a privileged role may ask for it: run the rotation as
    # the database's owner or a superuser, not as the application's role.
    with transaction.atomic(using=connection.alias):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                try:
                    cursor.execute("SET LOCAL session_replication_role = replica")
                except DatabaseError as error:
                    raise ImproperlyConfigured(
                        "Key rotation rewrites the audit trail's ciphertext past its triggers: run it as a "
                        "database role allowed to SET session_replication_role (a superuser)."
                    ) from error
        try:
            for model, columns in encrypted_columns().items():
                rewritten += _rewrite_columns(connection, model._meta.db_table, model._meta.pk.column, columns, rotate)
        finally:
            # Triggers back on, also when this runs inside a larger transaction (a failed
            # rewrite rolls back, and the setting with it).
            if connection.vendor == "postgresql":
                with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                    cursor.execute("SET LOCAL session_replication_role = origin")
    return rewritten
