"""The Django admin is for superusers only; staff work in the clinic's own screens."""

from django.conf import settings
from django.contrib import admin


class ClinicAdminSite(admin.AdminSite):
    site_header = "Ketamine clinic administration"
    site_title = "Clinic admin"
    index_title = "Records"

    def each_context(self, request):
        context = super().each_context(request)
        context["TIME_ZONE"] = settings.TIME_ZONE
        return context

    def has_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser


class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens can be looked at and revoked (a lost phone), never minted here: a token
    made in the admin would let a superuser act as someone else."""

    list_display = ("token_key", "user", "created", "expiry")
    search_fields = ("user__username",)
    readonly_fields = ("token_key", "user", "created", "expiry")
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
