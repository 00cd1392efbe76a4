from django import forms
from django.contrib import admin

from sessions.models import (
    ClosedDay,
    InductionSeries,
    InfusionAmendment,
    InfusionSession,
    Protocol,
    SideEffect,
    VitalSignReading,
)
from sessions.services import series_check, series_create


@admin.register(Protocol)
class ProtocolAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "infusion_count",
        "infusions_per_week",
        "route",
        "drug",
        "dose_display",
        "duration_minutes",
        "is_active",
    )
    list_filter = ("route", "drug", "dose_unit", "is_active")
    search_fields = ("name", "description")


@admin.register(ClosedDay)
class ClosedDayAdmin(admin.ModelAdmin):
    list_display = ("date", "reason")
    search_fields = ("reason",)
    date_hierarchy = "date"


class SeriesSessionInline(admin.TabularInline):
    model = InfusionSession
    fields = ("scheduled_at", "status", "dose_mg", "signed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class SeriesAddForm(forms.ModelForm):
    class Meta:
        model = InductionSeries
        fields = ("patient", "protocol", "start_date")

    def clean(self):
        data = super().clean()
        if all(data.get(name) for name in self.Meta.fields):
            series_check(patient=data["patient"], protocol=data["protocol"], start_date=data["start_date"])
        return data


@admin.register(InductionSeries)
class InductionSeriesAdmin(admin.ModelAdmin):
    list_display = ("patient", "protocol", "start_date", "planned_infusions", "completed", "discontinued_at")
    list_filter = ("protocol", "infusions_per_week", "start_date")
    search_fields = ("patient__mrn", "patient__last_name", "patient__first_name")
    autocomplete_fields = ("patient",)
    date_hierarchy = "start_date"
    list_select_related = ("patient", "protocol")
    inlines = [SeriesSessionInline]
    readonly_fields = (
        "id",
        "patient",
        "protocol",
        "planned_infusions",
        "infusions_per_week",
        "start_date",
        "discontinued_at",
        "discontinued_reason",
        "created_by",
        "created_at",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).with_progress()

    @admin.display(description="completed")
    def completed(self, obj: InductionSeries) -> int:
        return obj.completed_infusions()

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = SeriesAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("patient", "protocol", "start_date")
        return self.readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        # Everything about a series follows from its services (discontinuing cancels the
        # remaining sessions); the admin shows it.
        return obj is None and super().has_change_permission(request, obj)

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # A series is created with its sessions, by the service that owns the spacing rules.
        created = series_create(
            patient=obj.patient, protocol=obj.protocol, start_date=obj.start_date, created_by=request.user
        )
        obj.pk = created.pk
        obj._state.adding = False
        obj.refresh_from_db()


class LockedInlineMixin:
    extra = 0

    def _locked(self, obj) -> bool:
        return obj is not None and obj.is_signed

    def has_add_permission(self, request, obj=None) -> bool:
        return not self._locked(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return not self._locked(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return not self._locked(obj) and super().has_delete_permission(request, obj)


class VitalsInline(LockedInlineMixin, admin.TabularInline):
    model = VitalSignReading
    fields = ("taken_at", "phase", "systolic", "diastolic", "heart_rate", "spo2", "recorded_by")
    autocomplete_fields = ("recorded_by",)


class SideEffectInline(LockedInlineMixin, admin.TabularInline):
    model = SideEffect
    fields = ("kind", "severity", "note")


class AmendmentInline(admin.TabularInline):
    model = InfusionAmendment
    fields = ("created_at", "author", "reason", "changes")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(InfusionSession)
class InfusionSessionAdmin(admin.ModelAdmin):
    list_display = ("patient", "kind", "scheduled_at", "status", "route", "dose_mg", "signed_at")
    list_filter = ("status", "kind", "route", "drug", "scheduled_on")
    search_fields = ("patient__mrn", "patient__last_name", "patient__first_name")
    date_hierarchy = "scheduled_on"
    list_select_related = ("patient",)
    # Scheduling, status, dose and times follow rules that live in sessions.services
    # (clinic days, spacing, mg/kg x weight, signing): the admin shows them read-only.
    readonly_fields = (
        "id",
        "patient",
        "series",
        "kind",
        "scheduled_at",
        "scheduled_on",
        "status",
        "route",
        "drug",
        "dose_mg_per_kg",
        "weight_kg_used",
        "dose_mg",
        "planned_minutes",
        "started_at",
        "ended_at",
        "administered_by",
        "discharged_at",
        "discharged_by",
        "signed_at",
        "signed_by",
        "created_at",
        "updated_at",
    )
    inlines = [VitalsInline, SideEffectInline, AmendmentInline]

    def has_add_permission(self, request) -> bool:
        # Sessions are created by a series (induction) or by booking a booster.
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_signed:
            return False  # signed: view only; corrections are amendments
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class LockedChildAdmin(admin.ModelAdmin):
    """Rows logged inside an infusion: editable only while the session is unsigned."""

    list_select_related = ("session__patient",)
    search_fields = ("session__patient__mrn", "session__patient__last_name", "session__patient__first_name")
    autocomplete_fields = ("session",)

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.session.is_signed:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.session.is_signed:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(VitalSignReading)
class VitalSignReadingAdmin(LockedChildAdmin):
    list_display = ("session", "taken_at", "phase", "systolic", "diastolic", "heart_rate", "spo2", "recorded_by")
    list_filter = ("phase", "taken_at")
    autocomplete_fields = ("session", "recorded_by")
    date_hierarchy = "taken_at"


@admin.register(SideEffect)
class SideEffectAdmin(LockedChildAdmin):
    list_display = ("session", "kind", "severity", "note")
    list_filter = ("kind", "severity")


@admin.register(InfusionAmendment)
class InfusionAmendmentAdmin(admin.ModelAdmin):
    list_display = ("session", "created_at", "author", "reason")
    list_filter = ("created_at",)
    search_fields = ("session__patient__mrn", "session__patient__last_name", "author__username")  # reason: encrypted
    list_select_related = ("session__patient", "author")
    readonly_fields = ("session", "author", "reason", "changes", "created_at")

    def has_add_permission(self, request) -> bool:
        return False  # amendments are made by sessions.services.session_amend

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
