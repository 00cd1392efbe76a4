from django import forms
from django.contrib import admin

from maintenance.models import BoosterAppointment, JobRun, MaintenancePlan, Notification, Reminder
from maintenance.services import booster_check, booster_schedule


@admin.register(MaintenancePlan)
class MaintenancePlanAdmin(admin.ModelAdmin):
    list_display = (
        "patient",
        "protocol",
        "target_interval_days",
        "min_interval_days",
        "max_interval_days",
        "trigger_phq9_threshold",
        "trigger_phq9_rise",
        "is_active",
    )
    list_filter = ("is_active", "protocol")
    search_fields = ("patient__mrn", "patient__last_name", "patient__first_name")
    autocomplete_fields = ("patient",)
    list_select_related = ("patient", "protocol")


class BoosterAddForm(forms.ModelForm):
    class Meta:
        model = BoosterAppointment
        fields = ("patient", "scheduled_at")

    def clean(self):
        data = super().clean()
        if data.get("patient") and data.get("scheduled_at"):
            booster_check(patient=data["patient"], scheduled_at=data["scheduled_at"])
        return data


@admin.register(BoosterAppointment)
class BoosterAppointmentAdmin(admin.ModelAdmin):
    list_display = ("patient", "scheduled_at", "status", "route", "dose_mg", "signed_at")
    list_filter = ("status", "route", "scheduled_on")
    search_fields = ("patient__mrn", "patient__last_name", "patient__first_name")
    date_hierarchy = "scheduled_on"
    list_select_related = ("patient",)
    autocomplete_fields = ("patient",)

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = BoosterAddForm
        return super().get_form(request, obj, **kwargs)

    def has_change_permission(self, request, obj=None) -> bool:
        # Bookings are changed on the infusion session (Infusions > Infusion sessions).
        return obj is None and super().has_change_permission(request, obj)

    def has_view_permission(self, request, obj=None) -> bool:
        return super().has_view_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        created = booster_schedule(patient=obj.patient, scheduled_at=obj.scheduled_at, by=request.user)
        obj.pk = created.pk
        obj._state.adding = False
        obj.refresh_from_db()


@admin.register(Reminder)
class ReminderAdmin(admin.ModelAdmin):
    list_display = ("title", "kind", "stage", "repeat", "recipient", "channel", "status", "send_after", "sent_at")
    list_filter = ("status", "stage", "channel", "kind")
    search_fields = ("patient__mrn", "patient__last_name", "recipient__username")
    date_hierarchy = "send_after"
    list_select_related = ("patient", "recipient")
    readonly_fields = [f.name for f in Reminder._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("title", "kind", "recipient", "patient", "created_at", "read_at")
    list_filter = ("kind", ("read_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("title", "recipient__username", "patient__mrn", "patient__last_name")
    date_hierarchy = "created_at"
    list_select_related = ("recipient", "patient")
    readonly_fields = [f.name for f in Notification._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # raised by the safety rules and Celery

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("name", "last_success_at", "last_error_at")
    search_fields = ("name",)
    list_filter = ("name",)
    readonly_fields = ("name", "last_success_at", "last_error_at", "last_error")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
