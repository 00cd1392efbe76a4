"""Signal receivers of the clinic project."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import pre_save
from django.dispatch import receiver


@receiver(pre_save, sender=get_user_model())
def revoke_api_tokens_on_password_change(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    """A new password ends the user's API tokens, as it ends their browser sessions: a
    token on a lost phone stops working when the password is reset."""
    if raw or instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        from knox.models import AuthToken

        AuthToken.objects.filter(user_id=instance.pk).delete()
