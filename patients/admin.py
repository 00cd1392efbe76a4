from django.contrib import admin

from patients.models import Patient, PHQ9Assessment
from patients.phq9 import ITEM_FIELDS
from patients.services import phq9_record


class PHQ9Inline(admin.TabularInline):
    model = PHQ9Assessment
    fields = ("taken_at", "total", "severity", "item_9", "source", "safety_acknowledged_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="severity")
    def severity(self, obj: PHQ9Assessment) -> str:
        return obj.severity.label


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = (
        "mrn",
        "last_name",
        "first_name",
        "date_of_birth",
        "primary_diagnosis",
        "status",
        "primary_clinician",
    )
    list_filter = ("status", "primary_diagnosis", "primary_clinician")
    search_fields = ("mrn", "last_name", "first_name")  # not the email: it is encrypted
    autocomplete_fields = ("primary_clinician", "user")
    readonly_fields = ("id", "created_at", "updated_at")
    list_select_related = ("primary_clinician",)
    inlines = [PHQ9Inline]
    fieldsets = (
        (None, {"fields": ("id", "mrn", "first_name", "last_name", "date_of_birth", "primary_diagnosis", "status")}),
        ("Contact", {"fields": ("email", "phone", "address", "emergency_contact_name", "emergency_contact_phone")}),
        ("Weight", {"fields": ("weight_kg", "weight_recorded_on")}),
        ("Care team and portal", {"fields": ("primary_clinician", "user")}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )


class SafetyFilter(admin.SimpleListFilter):
    title = "item-9 safety flag"
    parameter_name = "safety"

    def lookups(self, request, model_admin):
        return (("open", "Needs acknowledgement"), ("acknowledged", "Acknowledged"), ("none", "No flag"))

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(item_9__gt=0, safety_acknowledged_at__isnull=True)
        if self.value() == "acknowledged":
            return queryset.filter(safety_acknowledged_at__isnull=False)
        if self.value() == "none":
            return queryset.filter(item_9=0)
        return queryset


@admin.register(PHQ9Assessment)
class PHQ9AssessmentAdmin(admin.ModelAdmin):
    list_display = ("patient", "taken_at", "total", "severity", "item_9", "source", "safety_acknowledged_at")
    list_filter = (SafetyFilter, "source", "taken_at")
    search_fields = ("patient__mrn", "patient__last_name", "patient__first_name")
    date_hierarchy = "taken_at"
    autocomplete_fields = ("patient",)
    list_select_related = ("patient",)
    readonly_fields = (
        "id",
        "total",
        "severity",
        "entered_by",
        "safety_acknowledged_at",
        "safety_acknowledged_by",
        "safety_action",
        "created_at",
    )
    fieldsets = (
        (None, {"fields": ("id", "patient", "taken_at", "source", "entered_by")}),
        ("Answers (0 not at all - 3 nearly every day)", {"fields": (*ITEM_FIELDS, "difficulty")}),
        ("Score", {"fields": ("total", "severity")}),
        (
            "Item-9 safety acknowledgement",
            {"fields": ("safety_acknowledged_at", "safety_acknowledged_by", "safety_action")},
        ),
    )

    @admin.display(description="severity")
    def severity(self, obj: PHQ9Assessment) -> str:
        return obj.severity.label if obj.pk else "-"

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # New assessments go through the same service as every other entry point.
        created = phq9_record(
            patient=obj.patient,
            answers={field: getattr(obj, field) for field in ITEM_FIELDS},
            difficulty=obj.difficulty,
            taken_at=obj.taken_at,
            source=obj.source,
            entered_by=request.user,
        )
        obj.pk = created.pk
        obj._state.adding = False
        obj.refresh_from_db()
