"""API for patients, their PHQ-9s and response curves (/api/v1/patients/, /api/v1/phq9/)."""

from __future__ import annotations

import json
from functools import cached_property

import django_filters
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from clinic.api import (
    ClinicFilterSet,
    ClinicModelSerializer,
    ClinicViewSet,
    InputSerializer,
    OffsetDateTimeField,
    OffsetDateTimeFilter,
    PlausibleDateField,
    VisiblePatientField,
    anyone_in_the_clinic,
    call_service,
    clinicians,
    service_error,
    staff,
    viewer,
)
from patients import access
from patients.charts import response_curve, response_curve_summary
from patients.forms import PatientFilter
from patients.models import MAX_WEIGHT_KG, MIN_WEIGHT_KG, Patient, PHQ9Assessment, PHQ9Source
from patients.phq9 import ITEM_FIELDS, Difficulty, Severity
from patients.services import patient_save, phq9_acknowledge_safety, phq9_record
from sessions.selectors import patient_treatment_summary, response_curve_data

# --- Patients --------------------------------------------------------------------------


class PatientClinicalSerializer(serializers.Serializer):
    """The part of a patient's record only clinicians see and set: the weight doses use."""

    weight_kg = serializers.DecimalField(
        max_digits=4,
        decimal_places=1,
        min_value=MIN_WEIGHT_KG,
        max_value=MAX_WEIGHT_KG,
        allow_null=True,
        required=False,
        help_text="Body weight in kg, to 0.1 kg.",
    )
    weight_recorded_on = PlausibleDateField(
        allow_null=True, required=False, help_text="Defaults to today when a weight is given."
    )


CLINICAL_FIELDS = tuple(PatientClinicalSerializer().fields)


class PatientSerializer(ClinicModelSerializer):
    clinical = PatientClinicalSerializer(
        source="*",
        required=False,
        allow_null=True,
        help_text="Clinicians only: null for other readers; only clinicians may send it.",
    )
    primary_clinician = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.filter(groups__name=access.Role.CLINICIAN.value, is_active=True),
        allow_null=True,
        required=False,
        help_text="User id of the clinician told about this patient's boosters and alerts.",
    )
    has_portal_account = serializers.SerializerMethodField()

    class Meta:
        model = Patient
        fields = [
            "id",
            "mrn",
            "first_name",
            "last_name",
            "date_of_birth",
            "primary_diagnosis",
            "status",
            "primary_clinician",
            "email",
            "accepts_email_reminders",
            "phone",
            "address",
            "emergency_contact_name",
            "emergency_contact_phone",
            "has_portal_account",
            "clinical",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def get_has_portal_account(self, patient: Patient) -> bool:
        return patient.user_id is not None

    def to_internal_value(self, data):
        if isinstance(data, dict) and "clinical" in data:
            if not access.can_record_clinical(viewer(self.context)):
                raise serializers.ValidationError({"clinical": ["Only clinicians record the weight."]})
            if data["clinical"] is None:
                data = {key: value for key, value in data.items() if key != "clinical"}
        values = super().to_internal_value(data)
        if values.get("weight_kg") is not None and values.get("weight_recorded_on") is None:
            values["weight_recorded_on"] = timezone.localdate()
        return values

    def to_representation(self, patient):
        data = super().to_representation(patient)
        if not access.can_view_clinical(viewer(self.context), patient):
            data["clinical"] = None
        return data


#: The patient's contact details, encrypted at rest (patients.models.Patient).
ENCRYPTED_CONTACT_FIELDS = ("email", "phone", "address", "emergency_contact_name", "emergency_contact_phone")


class PatientSummarySerializer(PatientSerializer):
    """A patient in the list: the record without the contact details (email, phone,
    address, emergency contact), which are read one patient at a time from the record
    (``GET /api/v1/patients/{id}/``), where the access log names the patient."""

    clinical = PatientClinicalSerializer(
        source="*", read_only=True, allow_null=True, help_text="Clinicians only: null for other readers."
    )
    primary_clinician = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="User id of the clinician told about this patient's boosters and alerts.",
    )

    class Meta(PatientSerializer.Meta):
        fields = [name for name in PatientSerializer.Meta.fields if name not in ENCRYPTED_CONTACT_FIELDS]
        read_only_fields = fields


class ProgressSerializer(serializers.Serializer):
    """The latest PHQ-9 against the current episode's baseline."""

    baseline_total = serializers.IntegerField(allow_null=True, help_text="0-27; null before a series.")
    latest_total = serializers.IntegerField(allow_null=True, help_text="0-27; null before any PHQ-9.")
    latest_taken_at = OffsetDateTimeField(allow_null=True)
    severity = serializers.ChoiceField(choices=Severity.choices, allow_null=True)
    change = serializers.IntegerField(allow_null=True, help_text="Points; negative is improvement.")
    response = serializers.BooleanField(allow_null=True, help_text="At least 50 % below the baseline.")
    remission = serializers.BooleanField(allow_null=True, help_text="Latest total below 5.")


class PatientDetailSerializer(PatientSerializer):
    progress = serializers.SerializerMethodField()

    class Meta(PatientSerializer.Meta):
        fields = [*PatientSerializer.Meta.fields, "progress"]

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, patient: Patient) -> dict:
        summary = patient_treatment_summary(patient)
        outcome, latest = summary.outcome, summary.latest
        return ProgressSerializer(
            {
                "baseline_total": summary.baseline.total if summary.baseline else None,
                "latest_total": latest.total if latest else None,
                "latest_taken_at": latest.taken_at if latest else None,
                "severity": latest.severity.value if latest else None,
                "change": outcome.change if outcome else None,
                "response": outcome.response if outcome else None,
                "remission": outcome.remission if outcome else None,
            }
        ).data


class CurvePointSerializer(serializers.Serializer):
    taken_at = OffsetDateTimeField()
    total = serializers.IntegerField(help_text="0-27")
    severity = serializers.CharField()
    item_9 = serializers.IntegerField(allow_null=True, help_text="0-3; null for readers who may not see it.")
    infusion = serializers.CharField(help_text="The infusion given that day, if any.")


class CurveInfusionSerializer(serializers.Serializer):
    when = OffsetDateTimeField()
    label = serializers.CharField()
    is_booster = serializers.BooleanField()


class ResponseCurveSerializer(serializers.Serializer):
    figure = serializers.JSONField(allow_null=True, help_text="A Plotly figure (data and layout); null below 2 PHQ-9s.")
    summary = serializers.CharField(help_text="The curve in words.")
    baseline_total = serializers.IntegerField(allow_null=True)
    points = CurvePointSerializer(many=True)
    infusions = CurveInfusionSerializer(many=True)


class PatientApiFilter(ClinicFilterSet, PatientFilter):
    """The list page's filters (name or record number, status, diagnosis), built once."""


class PatientViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    ClinicViewSet,
):
    """Patients: staff see and register every patient; a patient sees only their own record.

    Patients are never deleted (discharge them: ``status`` = discharged).
    """

    action_roles = {
        "list": anyone_in_the_clinic,
        "retrieve": anyone_in_the_clinic,
        "response_curve": anyone_in_the_clinic,
        "create": staff,
        "update": staff,
        "partial_update": staff,
    }
    filterset_class = PatientApiFilter  # the list page's: name or record number, status, diagnosis
    ordering_fields = ["last_name", "first_name", "mrn", "date_of_birth", "created_at", "status"]
    ordering = ["last_name", "first_name", "id"]

    def get_queryset(self):
        patients = access.visible_patients(self.request.user)
        if self.action == "list":
            # Not shown in the list (PatientSummarySerializer): not read, so not decrypted.
            patients = patients.defer(*ENCRYPTED_CONTACT_FIELDS)
        return patients

    def get_serializer_class(self):
        if self.action == "list":
            return PatientSummarySerializer
        return PatientDetailSerializer if self.action == "retrieve" else PatientSerializer

    @extend_schema(responses=PatientSummarySerializer(many=True))
    def list(self, request, *args, **kwargs):
        """Find patients: staff see every patient; a patient sees only their own record.

        Each patient comes without the contact details (email, phone, address, emergency
        contact): read them from the patient's record, ``GET /api/v1/patients/{id}/``. A list
        is for finding a patient, as the patients page is, and shows what it shows; the
        contact details of many patients at once are more than that needs, and a read of
        one patient's details is kept in the access log with that patient, which a list
        (that names no patient) cannot do.
        """
        return super().list(request, *args, **kwargs)

    def perform_create(self, serializer):
        serializer.instance = self._save(Patient(**serializer.validated_data))

    def perform_update(self, serializer):
        patient = serializer.instance
        for name, value in serializer.validated_data.items():
            setattr(patient, name, value)
        self._save(patient)

    def _save(self, patient: Patient) -> Patient:
        """Save through the service; errors about the weight are reported under "clinical",
        where the request sent it."""
        try:
            return patient_save(patient=patient, by=self.request.user)
        except DjangoValidationError as error:
            detail = service_error(error).detail
            clinical = {name: detail.pop(name) for name in CLINICAL_FIELDS if name in detail}
            if clinical:
                detail["clinical"] = clinical
            raise serializers.ValidationError(detail) from error

    @extend_schema(responses=ResponseCurveSerializer)
    @action(detail=True, methods=["get"], url_path="response-curve")
    def response_curve(self, request, pk=None):
        """The patient's PHQ-9 response curve as a Plotly figure, with its points."""
        patient = self.get_object()
        # Item-9 answers: clinicians, and the patient who gave them; not schedulers.
        clinical = access.can_view_clinical(request.user, patient) or patient.user_id == request.user.pk
        data = response_curve_data(patient, clinical=clinical)
        figure = response_curve(data)
        payload = {
            "figure": json.loads(figure.to_json()) if figure is not None else None,
            "summary": response_curve_summary(data),
            "baseline_total": data.baseline.total if data.baseline else None,
            "points": [
                {
                    "taken_at": point.taken_at,
                    "total": point.total,
                    "severity": point.band,
                    "item_9": point.item_9 if clinical else None,
                    "infusion": point.infusion,
                }
                for point in data.points
            ],
            "infusions": [
                {"when": item.when, "label": item.label, "is_booster": item.is_booster} for item in data.infusions
            ],
        }
        return Response(ResponseCurveSerializer(payload).data)


# --- PHQ-9 -------------------------------------------------------------------------------


class PHQ9AnswersSerializer(serializers.Serializer):
    item_1 = serializers.IntegerField()
    item_2 = serializers.IntegerField()
    item_3 = serializers.IntegerField()
    item_4 = serializers.IntegerField()
    item_5 = serializers.IntegerField()
    item_6 = serializers.IntegerField()
    item_7 = serializers.IntegerField()
    item_8 = serializers.IntegerField()
    item_9 = serializers.IntegerField()
    difficulty = serializers.CharField(help_text="The tenth question; empty if not answered.")


#: The answers as a questionnaire shows them: the nine items and the difficulty question.
ANSWER_FIELDS = tuple(PHQ9AnswersSerializer().fields)


class AcknowledgementSerializer(serializers.Serializer):
    acknowledged_at = OffsetDateTimeField(source="safety_acknowledged_at")
    acknowledged_by = serializers.IntegerField(source="safety_acknowledged_by_id")
    action = serializers.CharField(source="safety_action")


def _patient_user_id(assessment: PHQ9Assessment) -> int | None:
    """The login of the questionnaire's patient: annotated on the API's rows
    (PHQ9ViewSet.get_queryset), else from the patient the questionnaire was saved with."""
    if hasattr(assessment, "patient_user_id"):
        return assessment.patient_user_id
    return assessment.patient.user_id


class PHQ9Serializer(ClinicModelSerializer):
    severity = serializers.SerializerMethodField()
    severity_label = serializers.SerializerMethodField()
    # The stored answers as they are (small integers and the difficulty choice): read
    # straight from the row, not through a nested serializer of ten fields per row.
    answers = serializers.SerializerMethodField(help_text="Clinicians and the patient; null for schedulers.")
    safety_flag = serializers.SerializerMethodField(
        help_text="Item 9 above 0 (a safety event whatever the total). Null for readers who may not see it."
    )
    safety_acknowledgement = serializers.SerializerMethodField(help_text="Clinicians only; null until acknowledged.")
    crisis_support = serializers.SerializerMethodField(
        help_text="To the patient who answered item 9 above 0: where to get help now."
    )

    class Meta:
        model = PHQ9Assessment
        fields = [
            "id",
            "patient",
            "taken_at",
            "total",
            "severity",
            "severity_label",
            "source",
            "answers",
            "safety_flag",
            "safety_acknowledgement",
            "crisis_support",
            "created_at",
        ]
        read_only_fields = fields

    # What the reader may see, asked once per serializer (a list's rows share one).
    @cached_property
    def _reader_is_clinical(self) -> bool:
        # Clinical data is every clinician's, whoever the patient (patients.access): asked
        # without the patient, whose row a list does not load.
        return access.can_view_clinical(viewer(self.context))

    @cached_property
    def _reader_is_patient(self) -> bool:
        return access.has_role(viewer(self.context), access.Role.PATIENT)

    def _sees_answers(self, assessment: PHQ9Assessment) -> bool:
        return self._reader_is_clinical or self._is_own(assessment)

    def _is_own(self, assessment: PHQ9Assessment) -> bool:
        return self._reader_is_patient and _patient_user_id(assessment) == viewer(self.context).pk

    @extend_schema_field(PHQ9AnswersSerializer(allow_null=True))
    def get_answers(self, assessment: PHQ9Assessment) -> dict | None:
        if not self._sees_answers(assessment):
            return None
        return {name: getattr(assessment, name) for name in ANSWER_FIELDS}

    def get_severity(self, assessment: PHQ9Assessment) -> str:
        return assessment.severity.value

    def get_severity_label(self, assessment: PHQ9Assessment) -> str:
        return assessment.severity.label

    def get_safety_flag(self, assessment: PHQ9Assessment) -> bool | None:
        return assessment.has_safety_flag if self._sees_answers(assessment) else None

    @extend_schema_field(AcknowledgementSerializer(allow_null=True))
    def get_safety_acknowledgement(self, assessment: PHQ9Assessment) -> dict | None:
        if assessment.safety_acknowledged_at is None or not self._reader_is_clinical:
            return None
        return AcknowledgementSerializer(assessment).data

    def get_crisis_support(self, assessment: PHQ9Assessment) -> str | None:
        if not (assessment.has_safety_flag and self._is_own(assessment)):
            return None
        return (
            f"If you are thinking about hurting yourself, call or text {settings.CLINIC_CRISIS_LINE} now, "
            f"or {settings.CLINIC_EMERGENCY_NUMBER} in an emergency. Your care team has been told."
        )


class PHQ9CreateSerializer(InputSerializer):
    """A completed questionnaire: the nine items (0-3) and the difficulty answer.

    Staff name the patient and may give the time it was taken; a patient's own
    questionnaire is theirs and is dated now.
    """

    patient = VisiblePatientField(required=False)
    item_1 = serializers.IntegerField(min_value=0, max_value=3)
    item_2 = serializers.IntegerField(min_value=0, max_value=3)
    item_3 = serializers.IntegerField(min_value=0, max_value=3)
    item_4 = serializers.IntegerField(min_value=0, max_value=3)
    item_5 = serializers.IntegerField(min_value=0, max_value=3)
    item_6 = serializers.IntegerField(min_value=0, max_value=3)
    item_7 = serializers.IntegerField(min_value=0, max_value=3)
    item_8 = serializers.IntegerField(min_value=0, max_value=3)
    item_9 = serializers.IntegerField(min_value=0, max_value=3)
    difficulty = serializers.ChoiceField(choices=Difficulty.choices, required=False, allow_blank=True)
    taken_at = OffsetDateTimeField(required=False, help_text="Staff only; defaults to now.")

    @property
    def is_patient(self) -> bool:
        """The caller fills in their own questionnaire (portal rules), not staff."""
        user = viewer(self.context)
        return user is not None and not access.is_staff_member(user)

    def validate(self, values):
        if self.is_patient:
            if "taken_at" in values:
                raise serializers.ValidationError({"taken_at": ["Your questionnaire is dated when you send it."]})
            own = access.visible_patients(viewer(self.context)).first()
            if own is None:
                raise serializers.ValidationError({"patient": ["This account is not linked to a patient record."]})
            values["patient"] = own
        elif "patient" not in values:
            raise serializers.ValidationError({"patient": ["Say whose questionnaire this is."]})
        return values


class AcknowledgeSerializer(InputSerializer):
    action = serializers.CharField(help_text="What was done: called the patient, reviewed the safety plan ...")


class PHQ9ApiFilter(ClinicFilterSet):
    patient = django_filters.UUIDFilter(field_name="patient_id", help_text="Only this patient's questionnaires.")
    taken_after = OffsetDateTimeFilter(field_name="taken_at", lookup_expr="gte")
    taken_before = OffsetDateTimeFilter(field_name="taken_at", lookup_expr="lt")
    source = django_filters.ChoiceFilter(choices=PHQ9Source.choices)
    needs_acknowledgement = django_filters.BooleanFilter(
        method="filter_needs_acknowledgement",
        help_text="Clinicians: item-9 answers above 0 not yet acknowledged (true) or the others (false).",
    )

    class Meta:
        model = PHQ9Assessment
        fields = ["patient", "taken_after", "taken_before", "source", "needs_acknowledgement"]

    def filter_needs_acknowledgement(self, queryset, name, value):
        if not access.can_view_clinical(getattr(self.request, "user", None)):
            from rest_framework.exceptions import ValidationError

            raise ValidationError({"needs_acknowledgement": ["Only clinicians can filter by safety alerts."]})
        open_alerts = {"item_9__gt": 0, "safety_acknowledged_at__isnull": True}
        return queryset.filter(**open_alerts) if value else queryset.exclude(**open_alerts)


class PHQ9ViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    ClinicViewSet,
):
    """PHQ-9 questionnaires: clinicians enter them for any patient, a patient their own;
    schedulers read totals and bands only."""

    action_roles = {
        "list": anyone_in_the_clinic,
        "retrieve": anyone_in_the_clinic,
        "create": lambda user: access.is_clinician(user) or access.has_role(user, access.Role.PATIENT),
        "acknowledge": clinicians,
    }
    serializer_class = PHQ9Serializer
    filterset_class = PHQ9ApiFilter
    ordering_fields = ["taken_at", "total"]
    ordering = ["-taken_at", "id"]

    def get_queryset(self):
        # Of the patient, a questionnaire shows only the id (its own column): no Patient row
        # is read (or its contact details decrypted) per questionnaire. A patient's own
        # questionnaires also say whose they are (PHQ9Serializer._is_own), from the
        # patient's login, read by a subquery (not a join: the list's COUNT drops unused
        # annotations and reads the one table).
        queryset = PHQ9Assessment.objects.all()
        if self.action == "acknowledge":
            queryset = queryset.select_related("patient")  # the service checks it
        user = self.request.user
        if access.has_role(user, access.Role.PATIENT):
            patient_login = Patient.objects.filter(pk=OuterRef("patient_id")).values("user_id")[:1]
            queryset = queryset.annotate(patient_user_id=Subquery(patient_login))
        if access.is_staff_member(user):
            return queryset  # staff see every patient: no semi-join for the planner to cost
        return queryset.filter(patient__in=access.visible_patients(self.request.user))

    @extend_schema(request=PHQ9CreateSerializer, responses={201: PHQ9Serializer})
    def create(self, request):
        incoming = PHQ9CreateSerializer(data=request.data, context=self.get_serializer_context())
        incoming.is_valid(raise_exception=True)
        values = dict(incoming.validated_data)
        patient = values.pop("patient")
        assessment = call_service(
            phq9_record,
            patient=patient,
            answers={field: values[field] for field in ITEM_FIELDS},
            difficulty=values.get("difficulty", ""),
            taken_at=values.get("taken_at"),
            source=PHQ9Source.PORTAL if incoming.is_patient else PHQ9Source.CLINIC,
            entered_by=request.user,
        )
        return Response(self.get_serializer(assessment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AcknowledgeSerializer, responses=PHQ9Serializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        """Acknowledge an item-9 safety alert with the action taken (clinicians)."""
        assessment = self.get_object()
        incoming = AcknowledgeSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        assessment = call_service(
            phq9_acknowledge_safety,
            aliases={"safety_action": "action"},
            assessment=assessment,
            by=request.user,
            action=incoming.validated_data["action"],
        )
        return Response(self.get_serializer(assessment).data)
