"""Signal receivers of the clinic project."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
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


@receiver(user_logged_in)
def start_idle_clock(sender, request, user, **kwargs) -> None:
    """A new session gets the role's idle timeout at once (the first page then writes nothing)."""
    from django.utils import timezone

    from clinic.middleware import restart_idle_clock

    session = getattr(request, "session", None)
    if session is not None:
        restart_idle_clock(session, user, int(timezone.now().timestamp()))
