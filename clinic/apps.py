from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class ClinicConfig(AppConfig):
    name = "clinic"
    verbose_name = "Clinic"

    def ready(self) -> None:
        from django.contrib import admin
        from knox.models import AuthToken

        from clinic import checks, signals  # noqa: F401  (registers the system checks and receivers)
        from clinic.admin import ApiTokenAdmin

        # knox's own admin mints tokens for any user; ours only shows and revokes them.
        if admin.site.is_registered(AuthToken):
            admin.site.unregister(AuthToken)
        admin.site.register(AuthToken, ApiTokenAdmin)


class ClinicAdminConfig(AdminConfig):
    default_site = "clinic.admin.ClinicAdminSite"
