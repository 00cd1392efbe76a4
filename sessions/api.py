"""API for protocols, induction series and infusions (/api/v1/protocols/, series/, infusions/).

Logging an infusion is a sequence of actions on ``infusions/{id}/``: start (confirms
the weight and fixes the dose), vitals and side effects, complete, discharge, sign;
a signed record changes only by an amendment. Each action calls the service the
infusion page calls, so every rule (spacing, dose, thresholds, locks) holds here too.
"""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from clinic.api import (
    ClinicFilterSet,
    ClinicModelSerializer,
    ClinicViewSet,
    InputSerializer,
    OffsetDateTimeField,
    PlausibleDateField,
    VisiblePatientField,
    anyone_in_the_clinic,
    call_service,
    clinicians,
    staff,
    viewer,
)
from patients import access
from patients.models import MAX_WEIGHT_KG, MIN_WEIGHT_KG
from sessions import services
from sessions.models import (
    DissociationScale,
    InductionSeries,
    InfusionAmendment,
    InfusionSession,
    Protocol,
    SessionKind,
    SessionStatus,
    SideEffect,
    SideEffectKind,
    SideEffectSeverity,
    VitalSignReading,
)
from sessions.vitals import VitalPhase

# --- Protocols -------------------------------------------------------------------------


class ProtocolSerializer(ClinicModelSerializer):
    class Meta:
        model = Protocol
        fields = [
            "id",
            "name",
            "description",
            "infusion_count",
            "infusions_per_week",
            "route",
            "drug",
            "dose_unit",
            "dose",
            "duration_minutes",
            "is_active",
        ]
        read_only_fields = fields


class ProtocolFilter(ClinicFilterSet):
    class Meta:
        model = Protocol
        fields = ["is_active", "route"]


class ProtocolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ClinicViewSet):
    """The clinic's induction protocols (set up by an administrator in the admin site)."""

    action_roles = {"list": staff, "retrieve": staff}
    serializer_class = ProtocolSerializer
    queryset = Protocol.objects.all()
    # A filter set of its own (not ``filterset_fields``, from which django-filter builds
    # a new filter set class on every request).
    filterset_class = ProtocolFilter
    ordering_fields = ["name", "infusion_count"]
    ordering = ["name", "id"]


# --- Infusions -------------------------------------------------------------------------


class VitalsSerializer(ClinicModelSerializer):
    alerts = serializers.SerializerMethodField(help_text="Thresholds the reading crossed: review or alert.")

    class Meta:
        model = VitalSignReading
        fields = ["id", "taken_at", "phase", "systolic", "diastolic", "heart_rate", "spo2", "recorded_by", "alerts"]
        read_only_fields = fields

    def get_alerts(self, reading: VitalSignReading) -> list[dict[str, str]]:
        return [{"measure": a.measure, "level": a.level, "message": a.message} for a in reading.alerts()]


class SideEffectSerializer(ClinicModelSerializer):
    class Meta:
        model = SideEffect
        fields = ["id", "kind", "severity", "note", "created_at"]
        read_only_fields = fields


class AmendmentSerializer(ClinicModelSerializer):
    class Meta:
        model = InfusionAmendment
        fields = ["id", "author", "reason", "changes", "created_at"]
        read_only_fields = fields


class InfusionClinicalSerializer(serializers.Serializer):
    """The clinical record of an infusion: clinicians only."""

    dose_mg_per_kg = serializers.DecimalField(max_digits=4, decimal_places=2, allow_null=True)
    weight_kg_used = serializers.DecimalField(max_digits=4, decimal_places=1, allow_null=True)
    dose_mg = serializers.DecimalField(max_digits=5, decimal_places=1, allow_null=True, help_text="Total dose in mg.")
    administered_by = serializers.IntegerField(source="administered_by_id", allow_null=True)
    dissociation_scale = serializers.CharField()
    dissociation_score = serializers.IntegerField(allow_null=True)
    discharged_at = OffsetDateTimeField(allow_null=True)
    discharged_by = serializers.IntegerField(source="discharged_by_id", allow_null=True)
    notes = serializers.CharField()
    signed_by = serializers.IntegerField(source="signed_by_id", allow_null=True)
    vitals = VitalsSerializer(many=True)
    side_effects = SideEffectSerializer(many=True)
    amendments = AmendmentSerializer(many=True)


class InfusionSerializer(ClinicModelSerializer):
    clinical = InfusionClinicalSerializer(
        source="*", read_only=True, allow_null=True, help_text="Clinicians only; null for other readers."
    )
    is_signed = serializers.BooleanField(read_only=True)

    class Meta:
        model = InfusionSession
        fields = [
            "id",
            "patient",
            "series",
            "kind",
            "status",
            "status_reason",
            "scheduled_at",
            "scheduled_on",
            "route",
            "drug",
            "planned_minutes",
            "started_at",
            "ended_at",
            "is_signed",
            "signed_at",
            "clinical",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def _shows_clinical(self) -> bool:
        return access.can_view_clinical(viewer(self.context))

    def _shows_status_reason(self) -> bool:
        return access.is_staff_member(viewer(self.context))  # staff's free text, not for the patient

    @property
    def _readable_fields(self):
        # What a reader may not see is not even read (no queries for vitals and notes).
        hidden = set()
        if not self._shows_clinical():
            hidden.add("clinical")
        if not self._shows_status_reason():
            hidden.add("status_reason")
        return [field for field in super()._readable_fields if field.field_name not in hidden]

    def to_representation(self, session):
        data = super().to_representation(session)
        if not self._shows_clinical():
            data["clinical"] = None
        if not self._shows_status_reason():
            data["status_reason"] = ""
        return data


class InfusionFilter(ClinicFilterSet):
    patient = django_filters.UUIDFilter(field_name="patient_id")
    series = django_filters.UUIDFilter(field_name="series_id")
    kind = django_filters.ChoiceFilter(choices=SessionKind.choices)
    status = django_filters.ChoiceFilter(choices=SessionStatus.choices)
    on_or_after = django_filters.DateFilter(field_name="scheduled_on", lookup_expr="gte", help_text="Clinic day.")
    on_or_before = django_filters.DateFilter(field_name="scheduled_on", lookup_expr="lte", help_text="Clinic day.")
    signed = django_filters.BooleanFilter(field_name="signed_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = InfusionSession
        fields = ["patient", "series", "kind", "status", "on_or_after", "on_or_before", "signed"]


def infusions_for(user, queryset=None):
    """Infusions of the patients ``user`` may see, with what the serializer reads."""
    queryset = InfusionSession.objects.all() if queryset is None else queryset
    queryset = queryset.filter(patient__in=access.visible_patients(user))
    if not access.is_staff_member(user):
        # A patient sees their appointments as the portal shows them: not the cancelled ones.
        queryset = queryset.exclude(status=SessionStatus.CANCELLED)
    if access.can_view_clinical(user):
        queryset = queryset.prefetch_related(
            Prefetch("vitals", queryset=VitalSignReading.objects.order_by("taken_at")),
            Prefetch("side_effects", queryset=SideEffect.objects.order_by("created_at")),
            Prefetch("amendments", queryset=InfusionAmendment.objects.order_by("created_at")),
        )
    return queryset


class StartSerializer(InputSerializer):
    weight_kg = serializers.DecimalField(
        max_digits=4,
        decimal_places=1,
        min_value=MIN_WEIGHT_KG,
        max_value=MAX_WEIGHT_KG,
        required=False,
        allow_null=True,
        help_text="Today's weight (kg): required for a weight-based dose (mg = mg/kg x kg).",
    )
    started_at = OffsetDateTimeField(required=False, help_text="Defaults to now.")


class VitalsCreateSerializer(InputSerializer):
    phase = serializers.ChoiceField(choices=VitalPhase.choices)
    taken_at = OffsetDateTimeField(required=False, help_text="Defaults to now.")
    systolic = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=1000, help_text="mmHg")
    diastolic = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=1000, help_text="mmHg")
    heart_rate = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=1000, help_text="beats/min"
    )
    spo2 = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=1000, help_text="%")


class SideEffectCreateSerializer(InputSerializer):
    kind = serializers.ChoiceField(choices=SideEffectKind.choices)
    severity = serializers.ChoiceField(choices=SideEffectSeverity.choices, default=SideEffectSeverity.MILD)
    note = serializers.CharField(required=False, allow_blank=True, max_length=300)


class CompleteSerializer(InputSerializer):
    ended_at = OffsetDateTimeField(required=False, help_text="Defaults to now.")
    dissociation_scale = serializers.ChoiceField(choices=DissociationScale.choices, required=False, allow_blank=True)
    dissociation_score = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=1000)
    notes = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


class DischargeSerializer(InputSerializer):
    discharged_at = OffsetDateTimeField(required=False, help_text="Defaults to now.")


class SignSerializer(InputSerializer):
    """Nothing to send: a record is signed now, by the caller."""


class AmendChangesSerializer(InputSerializer):
    """The corrected values; only the fields given are amended."""

    notes = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    dissociation_scale = serializers.ChoiceField(choices=DissociationScale.choices, required=False, allow_blank=True)
    dissociation_score = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=1000)
    started_at = OffsetDateTimeField(required=False)
    ended_at = OffsetDateTimeField(required=False)
    discharged_at = OffsetDateTimeField(required=False)
    weight_kg_used = serializers.DecimalField(
        max_digits=4, decimal_places=1, min_value=MIN_WEIGHT_KG, max_value=MAX_WEIGHT_KG, required=False
    )


class AmendSerializer(InputSerializer):
    reason = serializers.CharField(help_text="Why the signed record is corrected.")
    changes = AmendChangesSerializer()


class RescheduleSerializer(InputSerializer):
    scheduled_at = OffsetDateTimeField()


class GapSerializer(serializers.Serializer):
    """A stretch between two infusions of a series longer than allowed (to report)."""

    after = serializers.DateField()
    before = serializers.DateField()
    days = serializers.IntegerField()


class RescheduleResultSerializer(serializers.Serializer):
    infusion = InfusionSerializer()
    gaps = GapSerializer(many=True, help_text="Gaps in the series over the allowed maximum after the move.")


class CloseSerializer(InputSerializer):
    reason = serializers.CharField(max_length=200, help_text="Kept with the appointment.")


class InfusionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ClinicViewSet):
    """Infusion sessions, induction and booster. Staff see every patient's, a patient their
    own appointments; only clinicians see and record the clinical record."""

    action_roles = {
        "list": anyone_in_the_clinic,
        "retrieve": anyone_in_the_clinic,
        "start": clinicians,
        "vitals": clinicians,
        "side_effects": clinicians,
        "complete": clinicians,
        "discharge": clinicians,
        "sign": clinicians,
        "amend": clinicians,
        "reschedule": staff,
        "cancel": staff,
        "missed": staff,
    }
    serializer_class = InfusionSerializer
    filterset_class = InfusionFilter
    ordering_fields = ["scheduled_at", "status"]
    ordering = ["scheduled_at", "id"]

    def get_queryset(self):
        return infusions_for(self.request.user)

    def _act(self, request, incoming_class, service, *, created=None, **extra):
        """Parse the body, call the service on this infusion, answer with the infusion
        (or with ``created(result)`` and 201 when the action adds a record)."""
        session = self.get_object()
        incoming = incoming_class(data=request.data)
        incoming.is_valid(raise_exception=True)
        result = call_service(service, session=session, by=request.user, **incoming.validated_data, **extra)
        if created is not None:
            return Response(created(result), status=status.HTTP_201_CREATED)
        return Response(self.get_serializer(self.get_queryset().get(pk=session.pk)).data)

    @extend_schema(request=StartSerializer, responses=InfusionSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """Start the infusion: confirm today's weight (kg); the dose is mg/kg x kg."""
        session = self.get_object()
        incoming = StartSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        if session.is_weight_based and incoming.validated_data.get("weight_kg") is None:
            # As on the infusion page: the weight is confirmed, never taken silently from the record.
            raise serializers.ValidationError({"weight_kg": ["Confirm today's weight (kg) to compute the dose."]})
        call_service(services.session_start, session=session, by=request.user, **incoming.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=session.pk)).data)

    @extend_schema(request=VitalsCreateSerializer, responses={201: VitalsSerializer})
    @action(detail=True, methods=["post"])
    def vitals(self, request, pk=None):
        """Record a timestamped reading; a reading past an alert threshold alerts clinicians."""
        return self._act(
            request, VitalsCreateSerializer, services.session_record_vitals, created=lambda r: VitalsSerializer(r).data
        )

    @extend_schema(request=SideEffectCreateSerializer, responses={201: SideEffectSerializer})
    @action(detail=True, methods=["post"], url_path="side-effects")
    def side_effects(self, request, pk=None):
        return self._act(
            request,
            SideEffectCreateSerializer,
            services.session_record_side_effect,
            created=lambda r: SideEffectSerializer(r).data,
        )

    @extend_schema(request=CompleteSerializer, responses=InfusionSerializer)
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        """The infusion is over: when it ended, the dissociation score, notes."""
        return self._act(request, CompleteSerializer, services.session_complete)

    @extend_schema(request=DischargeSerializer, responses=InfusionSerializer)
    @action(detail=True, methods=["post"])
    def discharge(self, request, pk=None):
        return self._act(request, DischargeSerializer, services.session_discharge)

    @extend_schema(request=SignSerializer, responses=InfusionSerializer)
    @action(detail=True, methods=["post"])
    def sign(self, request, pk=None):
        """Sign the record; it is locked from now on and changes only by amendment."""
        return self._act(request, SignSerializer, services.session_sign)

    @extend_schema(request=AmendSerializer, responses={201: AmendmentSerializer})
    @action(detail=True, methods=["post"])
    def amend(self, request, pk=None):
        """Correct a signed record; the amendment keeps the values it replaces."""
        session = self.get_object()
        incoming = AmendSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        amendment = call_service(
            services.session_amend,
            session=session,
            by=request.user,
            reason=incoming.validated_data["reason"],
            changes=dict(incoming.validated_data["changes"]),
        )
        return Response(AmendmentSerializer(amendment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RescheduleSerializer, responses=RescheduleResultSerializer)
    @action(detail=True, methods=["post"])
    def reschedule(self, request, pk=None):
        """Move an infusion that has not started (boosters keep to the plan's minimum interval)."""
        session = self.get_object()
        incoming = RescheduleSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        gaps = call_service(
            services.session_reschedule,
            session=session,
            by=request.user,
            scheduled_at=incoming.validated_data["scheduled_at"],
        )
        infusion = self.get_serializer(self.get_queryset().get(pk=session.pk)).data
        return Response({"infusion": infusion, "gaps": GapSerializer(gaps, many=True).data})

    @extend_schema(request=CloseSerializer, responses=InfusionSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._act(request, CloseSerializer, services.session_cancel)

    @extend_schema(request=CloseSerializer, responses=InfusionSerializer)
    @action(detail=True, methods=["post"])
    def missed(self, request, pk=None):
        """The patient did not come; book a make-up on the series."""
        return self._act(request, CloseSerializer, services.session_mark_missed)


# --- Induction series ----------------------------------------------------------------------


class SeriesSerializer(ClinicModelSerializer):
    completed_infusions = serializers.SerializerMethodField()
    is_complete = serializers.BooleanField(read_only=True)
    is_in_progress = serializers.BooleanField(read_only=True)
    discontinued_reason = serializers.SerializerMethodField(help_text="Clinicians only (null for other readers).")
    sessions = serializers.SerializerMethodField(help_text="The series' infusions, in order (ids).")

    class Meta:
        model = InductionSeries
        fields = [
            "id",
            "patient",
            "protocol",
            "planned_infusions",
            "infusions_per_week",
            "start_date",
            "completed_infusions",
            "is_complete",
            "is_in_progress",
            "discontinued_at",
            "discontinued_reason",
            "sessions",
            "created_at",
        ]
        read_only_fields = fields

    def get_completed_infusions(self, series: InductionSeries) -> int:
        return series.completed_infusions()

    def get_discontinued_reason(self, series: InductionSeries) -> str | None:
        return series.discontinued_reason if access.can_view_clinical(viewer(self.context)) else None

    def get_sessions(self, series: InductionSeries) -> list[str]:
        return [str(session.pk) for session in series.sessions.all()]


class SeriesCreateSerializer(InputSerializer):
    patient = VisiblePatientField()
    protocol = serializers.PrimaryKeyRelatedField(queryset=Protocol.objects.all())
    start_date = PlausibleDateField(help_text="The first infusion on or after this clinic day.")
    appointment_time = serializers.TimeField(required=False, help_text="Clinic local time; the clinic's default.")
    expected_dates = serializers.ListField(
        child=PlausibleDateField(),
        required=False,
        max_length=12,
        help_text="The dates of the preview: the series is booked only if they still hold.",
    )


class SeriesPreviewSerializer(serializers.Serializer):
    dates = serializers.ListField(child=serializers.DateField(), help_text="One clinic day per infusion.")
    gaps = GapSerializer(many=True)


class DiscontinueSerializer(InputSerializer):
    reason = serializers.CharField()


class MakeupSerializer(InputSerializer):
    scheduled_at = OffsetDateTimeField()


class SeriesFilter(ClinicFilterSet):
    patient = django_filters.UUIDFilter(field_name="patient_id")
    protocol = django_filters.UUIDFilter(field_name="protocol_id")
    started_after = django_filters.DateFilter(field_name="start_date", lookup_expr="gte")
    started_before = django_filters.DateFilter(field_name="start_date", lookup_expr="lte")

    class Meta:
        model = InductionSeries
        fields = ["patient", "protocol", "started_after", "started_before"]


class SeriesViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ClinicViewSet):
    """Induction series: POST builds a series and its infusions from a protocol and a
    start date (staff); ``preview`` shows the dates first without booking."""

    action_roles = {
        "list": anyone_in_the_clinic,
        "retrieve": anyone_in_the_clinic,
        "create": staff,
        "preview": staff,
        "discontinue": staff,
        "makeup": staff,
    }
    serializer_class = SeriesSerializer
    filterset_class = SeriesFilter
    ordering_fields = ["start_date", "created_at"]
    ordering = ["-start_date", "id"]

    def get_queryset(self):
        return (
            InductionSeries.objects.with_progress()
            .filter(patient__in=access.visible_patients(self.request.user))
            .prefetch_related(
                Prefetch("sessions", queryset=InfusionSession.objects.order_by("scheduled_at").only("id", "series_id"))
            )
        )

    def _incoming(self, request) -> dict:
        incoming = SeriesCreateSerializer(data=request.data, context=self.get_serializer_context())
        incoming.is_valid(raise_exception=True)
        return dict(incoming.validated_data)

    @extend_schema(request=SeriesCreateSerializer, responses={201: SeriesSerializer})
    def create(self, request):
        values = self._incoming(request)
        series = call_service(services.series_create, created_by=request.user, **values)
        return Response(self.get_serializer(self.get_queryset().get(pk=series.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SeriesCreateSerializer, responses=SeriesPreviewSerializer)
    @action(detail=False, methods=["post"])
    def preview(self, request):
        """The dates a new series would take, and gaps over the allowed maximum (nothing is booked)."""
        values = self._incoming(request)
        patient, protocol, start = values["patient"], values["protocol"], values["start_date"]
        call_service(services.series_check, patient=patient, protocol=protocol, start_date=start)
        plan = call_service(services.series_plan, patient=patient, protocol=protocol, start_date=start)
        return Response(SeriesPreviewSerializer({"dates": plan.dates, "gaps": plan.gaps}).data)

    @extend_schema(request=DiscontinueSerializer, responses=SeriesSerializer)
    @action(detail=True, methods=["post"])
    def discontinue(self, request, pk=None):
        """Stop a series early; its remaining appointments are cancelled."""
        series = self.get_object()
        incoming = DiscontinueSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        call_service(
            services.series_discontinue,
            aliases={"discontinued_reason": "reason"},
            series=series,
            by=request.user,
            reason=incoming.validated_data["reason"],
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=series.pk)).data)

    @extend_schema(request=MakeupSerializer, responses={201: InfusionSerializer})
    @action(detail=True, methods=["post"])
    def makeup(self, request, pk=None):
        """Book an extra infusion in the series after a missed or cancelled one."""
        series = self.get_object()
        incoming = MakeupSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        session = call_service(
            services.series_schedule_makeup,
            series=series,
            by=request.user,
            scheduled_at=incoming.validated_data["scheduled_at"],
        )
        infusion = infusions_for(request.user).get(pk=session.pk)
        return Response(
            InfusionSerializer(infusion, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED
        )
