"""API for boosters, maintenance plans and the staff inbox
(/api/v1/boosters/, maintenance-plans/, notifications/)."""

from __future__ import annotations

import django_filters
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from clinic.api import (
    ClinicFilterSet,
    ClinicModelSerializer,
    ClinicViewSet,
    InputSerializer,
    OffsetDateTimeField,
    VisiblePatientField,
    anyone_in_the_clinic,
    call_service,
    staff,
)
from maintenance.models import BoosterAppointment, BoosterStage, MaintenancePlan, Notification, NotificationKind
from maintenance.selectors import BoosterStatus, booster_board, booster_status
from maintenance.services import PLAN_FIELDS, booster_schedule, maintenance_plan_save
from patients import access
from sessions.api import InfusionFilter, InfusionSerializer, infusions_for

# --- Booster status -------------------------------------------------------------------------


class TriggerSerializer(serializers.Serializer):
    reason = serializers.CharField()
    phq9 = serializers.UUIDField(source="assessment.pk")
    total = serializers.IntegerField(source="assessment.total")
    taken_at = OffsetDateTimeField(source="assessment.taken_at")


class AppointmentRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    scheduled_at = OffsetDateTimeField()


class BoosterStatusSerializer(serializers.Serializer):
    """Where the patient's next booster stands (intervals in days)."""

    stage = serializers.ChoiceField(choices=BoosterStage.choices, source="due.stage")
    due_on = serializers.DateField(source="due.due_on")
    due_until = serializers.DateField(source="due.due_until", help_text="The last day before it is overdue.")
    days_until_due = serializers.IntegerField(source="due.days_until_due", help_text="Negative once past due.")
    last_infusion_on = serializers.DateField(source="due.last_infusion_on")
    trigger = TriggerSerializer(allow_null=True, help_text="A symptom trigger that brought the booster forward.")
    next_appointment = AppointmentRefSerializer(allow_null=True)


class BoardRowSerializer(serializers.Serializer):
    patient = serializers.UUIDField(source="patient.pk")
    patient_name = serializers.CharField(source="patient.full_name")
    status = BoosterStatusSerializer()
    suggested_on = serializers.DateField(help_text="The first open clinic day from the due date, never in the past.")


# --- Boosters -------------------------------------------------------------------------------


class BoosterCreateSerializer(InputSerializer):
    patient = VisiblePatientField()
    scheduled_at = OffsetDateTimeField()


class BoosterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ClinicViewSet):
    """Booster infusions: staff book them on the patient's maintenance plan; ``due`` lists
    every active plan's booster stage, most urgent first. Move or cancel a booster with
    ``infusions/{id}/reschedule/`` and ``cancel/``; log it like any infusion."""

    action_roles = {
        "list": anyone_in_the_clinic,
        "retrieve": anyone_in_the_clinic,
        "create": staff,
        "due": staff,
    }
    serializer_class = InfusionSerializer
    filterset_class = InfusionFilter
    ordering_fields = ["scheduled_at", "status"]
    ordering = ["scheduled_at", "id"]

    def get_queryset(self):
        return infusions_for(self.request.user, BoosterAppointment.objects.all())

    @extend_schema(request=BoosterCreateSerializer, responses={201: InfusionSerializer})
    def create(self, request):
        """Book a booster with the route and dose of the patient's plan."""
        incoming = BoosterCreateSerializer(data=request.data, context=self.get_serializer_context())
        incoming.is_valid(raise_exception=True)
        booster = call_service(booster_schedule, by=request.user, **incoming.validated_data)
        return Response(
            self.get_serializer(self.get_queryset().get(pk=booster.pk)).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        parameters=[OpenApiParameter("stage", enum=BoosterStage.values, description="Only rows at this stage.")],
        responses=BoardRowSerializer(many=True),
        filters=False,
    )
    @action(detail=False, methods=["get"], filter_backends=[])
    def due(self, request):
        """Every patient on an active plan with their booster's stage, most urgent first."""
        stage = request.query_params.get("stage")
        if stage and stage not in BoosterStage.values:
            raise ValidationError({"stage": [f"Choose one of: {', '.join(BoosterStage.values)}."]})
        rows = [row for row in booster_board().rows if not stage or row.status.due.stage == stage]
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(BoardRowSerializer(page, many=True).data)


# --- Maintenance plans ----------------------------------------------------------------------


class MaintenancePlanSerializer(ClinicModelSerializer):
    patient = VisiblePatientField()

    class Meta:
        model = MaintenancePlan
        fields = ["id", "patient", *PLAN_FIELDS, "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"notes": {"help_text": "Scheduling notes (seen by staff)."}}

    def get_validators(self):
        # One plan per patient is the service's rule (with its own message), not a unique validator.
        return []


class MaintenancePlanDetailSerializer(MaintenancePlanSerializer):
    """A plan with its booster's current stage; the patient of a plan never changes."""

    patient = serializers.PrimaryKeyRelatedField(read_only=True)
    booster_status = serializers.SerializerMethodField()

    class Meta(MaintenancePlanSerializer.Meta):
        fields = [*MaintenancePlanSerializer.Meta.fields, "booster_status"]
        read_only_fields = [*MaintenancePlanSerializer.Meta.read_only_fields, "booster_status"]

    @extend_schema_field(BoosterStatusSerializer(allow_null=True))
    def get_booster_status(self, plan: MaintenancePlan) -> dict | None:
        current: BoosterStatus | None = booster_status(patient=plan.patient)
        return BoosterStatusSerializer(current).data if current is not None else None


class MaintenancePlanViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    ClinicViewSet,
):
    """Each patient's maintenance plan: how often boosters come and what brings one forward."""

    action_roles = {
        "list": staff,
        "retrieve": staff,
        "create": staff,
        "update": staff,
        "partial_update": staff,
    }
    filterset_fields = {"patient": ["exact"], "is_active": ["exact"], "protocol": ["exact"]}
    ordering_fields = ["created_at", "target_interval_days"]
    ordering = ["created_at", "id"]

    def get_queryset(self):
        return MaintenancePlan.objects.filter(patient__in=access.visible_patients(self.request.user)).select_related(
            "patient"
        )

    def get_serializer_class(self):
        if self.action in ("retrieve", "update", "partial_update"):
            return MaintenancePlanDetailSerializer
        return MaintenancePlanSerializer

    def perform_create(self, serializer):
        values = dict(serializer.validated_data)
        patient = values.pop("patient")
        if MaintenancePlan.objects.filter(patient=patient).exists():
            raise ValidationError({"patient": ["This patient already has a plan; change it with PATCH."]})
        serializer.instance = call_service(maintenance_plan_save, patient=patient, by=self.request.user, **values)

    def perform_update(self, serializer):
        plan = serializer.instance
        serializer.instance = call_service(
            maintenance_plan_save, patient=plan.patient, by=self.request.user, **serializer.validated_data
        )


# --- Notifications --------------------------------------------------------------------------


class NotificationSerializer(ClinicModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "patient", "link", "subject_id", "created_at", "read_at"]
        read_only_fields = fields
        extra_kwargs = {"subject_id": {"help_text": "The record it is about: a PHQ-9 for a safety alert."}}


class NotificationFilter(ClinicFilterSet):
    unread = django_filters.BooleanFilter(field_name="read_at", lookup_expr="isnull")
    kind = django_filters.ChoiceFilter(choices=NotificationKind.choices)
    patient = django_filters.UUIDFilter(field_name="patient_id")

    class Meta:
        model = Notification
        fields = ["unread", "kind", "patient"]


class ReadAllSerializer(serializers.Serializer):
    marked = serializers.IntegerField(help_text="How many notifications were unread.")


class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ClinicViewSet):
    """The signed-in user's own inbox."""

    action_roles = {
        "list": anyone_in_the_clinic,
        "retrieve": anyone_in_the_clinic,
        "read": anyone_in_the_clinic,
        "read_all": anyone_in_the_clinic,
    }
    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    ordering_fields = ["created_at"]
    ordering = ["-created_at", "id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Notification.objects.none()
        return Notification.objects.filter(recipient=self.request.user)

    @extend_schema(request=None, responses=NotificationSerializer)
    @action(detail=True, methods=["post"])
    def read(self, request, pk=None):
        """Mark the notification read (reading it twice keeps the first time)."""
        notification = self.get_object()
        now = timezone.now()
        Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=now, updated_at=now)
        notification.refresh_from_db()
        return Response(self.get_serializer(notification).data)

    @extend_schema(request=None, responses=ReadAllSerializer)
    @action(detail=False, methods=["post"], url_path="read-all", filter_backends=[])
    def read_all(self, request):
        """Mark every unread notification of the inbox read."""
        now = timezone.now()
        marked = self.get_queryset().filter(read_at__isnull=True).update(read_at=now, updated_at=now)
        return Response({"marked": marked})
