"""What every endpoint of the REST API shares: permissions by role, errors, paging,
times with offsets, and the login, logout and ``me`` endpoints.

The API is a second face on the same services as the pages: a viewset parses the
request, calls the service, and turns the service's ``ValidationError`` into a 400
with field-level messages. Who may do what is decided by ``patients.access``, as for
the pages; the querysets of every viewset start from ``access.visible_patients``, so
another patient's record is a 404, never a 403 that would confirm it exists.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import django_filters
from axes.exceptions import AxesBackendPermissionDenied
from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.decorators import method_decorator
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, inline_serializer
from knox.models import get_token_model
from rest_framework import exceptions, permissions, serializers, status, viewsets
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.filters import OrderingFilter
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView, exception_handler, set_rollback

from audit import access as audit_access
from patients import access
from patients.access import Role

# --- Permissions -------------------------------------------------------------------

#: Who may call an action; a viewset maps each of its actions to one of these.
Rule = Callable[[Any], bool]


def anyone_in_the_clinic(user) -> bool:
    """Staff, and patients (whose querysets hold only their own records)."""
    return access.is_staff_member(user) or access.has_role(user, Role.PATIENT)


def staff(user) -> bool:
    return access.is_staff_member(user)


def clinicians(user) -> bool:
    return access.is_clinician(user)


class ActionRoles(permissions.BasePermission):
    """Allow an action to the roles its viewset names in ``action_roles``.

    An action missing from the map is refused, so a new action is closed until someone
    decides who may call it (and the permission walk in tests/test_api_permissions.py
    fails until the table there says so too).
    """

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        rules: Mapping[str, Rule] = getattr(view, "action_roles", {})
        rule = rules.get(getattr(view, "action", None) or request.method.lower())
        return bool(rule and rule(request.user))


class ClinicFilterBackend(DjangoFilterBackend):
    """django-filter's backend. A request with no query string has nothing to filter by:
    every filter would be given no value and leave the list as it is, so the filter set
    and its form are not built for it."""

    def filter_queryset(self, request, queryset, view):
        if not request.query_params:
            return queryset
        return super().filter_queryset(request, queryset, view)


class ClinicFilterSet(django_filters.FilterSet):
    """The filters of an API list. django-filter builds a new form class out of a filter
    set's filters for every request (``FilterSet.get_form_class``); when no filter's
    choices depend on the request, the form class is the same every time, so each filter
    set builds it once, on first use, and every request validates its query string with
    a form of that class."""

    def get_form_class(self):
        form_class = type(self).__dict__.get("_form_class")
        if form_class is None:
            form_class = super().get_form_class()
            if not any(_depends_on_the_request(filter_) for filter_ in self.filters.values()):
                type(self)._form_class = form_class
        return form_class


def _depends_on_the_request(filter_) -> bool:
    """A model-choice filter given a callable: its choices are the request's (django-filter)."""
    return isinstance(filter_, django_filters.filters.QuerySetRequestMixin) and callable(filter_.queryset)


class ClinicViewSet(viewsets.GenericViewSet):
    """What every resource of the API shares: roles per action, filters and ordering."""

    permission_classes = [ActionRoles]
    filter_backends = [ClinicFilterBackend, OrderingFilter]

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        if page:
            self._tell_the_access_log(page)
        return page

    def _tell_the_access_log(self, rows) -> None:
        """A list narrowed by ``?patient=`` to rows that carry that patient: hand the
        patient (and their login, if the rows carry it) to the access log, which would
        otherwise look the patient up again to name them (audit.access.patient_seen)."""
        named = self.request.query_params.get(audit_access.PATIENT_FILTER)
        row = rows[0]
        patient_id = getattr(row, "patient_id", None) if isinstance(row, models.Model) else None
        if not named or patient_id is None or str(patient_id) != named:
            return  # the log looks up whatever else the parameter says, as it always has
        audit_access.patient_seen(
            self.request._request, named, patient_id=patient_id, patient_user_id=self._patient_login(row)
        )

    @staticmethod
    def _patient_login(row):
        """The login of ``row``'s patient if the row carries it: a ``patient_user_id``
        annotation, or the patient already joined (else audit.access.LOGIN_NOT_READ)."""
        if hasattr(row, "patient_user_id"):
            return row.patient_user_id
        try:
            joined = row._meta.get_field("patient").is_cached(row)
        except FieldDoesNotExist:
            joined = False
        return row.patient.user_id if joined else audit_access.LOGIN_NOT_READ


# --- Errors ------------------------------------------------------------------------


def service_error(error: DjangoValidationError, aliases: Mapping[str, str] | None = None) -> exceptions.ValidationError:
    """A service's ``ValidationError`` as a 400: ``{"field": ["message"]}``, with
    messages about the record as a whole under ``non_field_errors``.

    ``aliases`` maps a service's field names to the request's (a service may say
    ``safety_action`` where the API asks for ``action``).
    """
    non_field = api_settings.NON_FIELD_ERRORS_KEY
    if hasattr(error, "error_dict"):
        detail: dict[str, list[str]] = {}
        for field, messages in error.message_dict.items():
            key = non_field if field == "__all__" else (aliases or {}).get(field, field)
            detail.setdefault(key, []).extend(messages)
        return exceptions.ValidationError(detail)
    return exceptions.ValidationError({non_field: error.messages})


def handle_exception(exc, context):
    """DRF's handler, taught the Django exceptions the services raise."""
    if isinstance(exc, AxesBackendPermissionDenied):
        from clinic.views import locked_out

        set_rollback()
        return locked_out(context["request"]._request)
    if isinstance(exc, DjangoValidationError):
        exc = service_error(exc)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    return exception_handler(exc, context)


def call_service(function: Callable[..., Any], *, aliases: Mapping[str, str] | None = None, **kwargs) -> Any:
    """Run a service and turn its ``ValidationError`` into a 400 with the request's field names."""
    try:
        return function(**kwargs)
    except DjangoValidationError as error:
        raise service_error(error, aliases) from error


# --- Fields -----------------------------------------------------------------


class InputSerializer(serializers.Serializer):
    """The body of an action: a key it does not take is refused, not silently dropped
    (a misspelt "note" must not lose the note; a "signed_at" must not seem to backdate)."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                message = "Unknown field: the request does not take it."
                raise exceptions.ValidationError({key: [message] for key in unknown})
        return super().to_internal_value(data)


class OffsetDateTimeField(serializers.DateTimeField):
    """A date-time in ISO 8601 with its UTC offset; a time without one is refused
    rather than guessed (a booking must not move by an hour around a DST change)."""

    default_error_messages = {
        "naive": "Give the time with its UTC offset, for example 2026-11-23T09:00:00-05:00.",
        "implausible": "Enter a time between the years 1900 and 2100.",
    }

    def bind(self, field_name, parent):
        super().bind(field_name, parent)
        if not hasattr(self, "timezone"):
            # Times are shown in the zone current for the request (the clinic's). DRF asks
            # for it at every value; a field is bound afresh for each request's serializer,
            # so it asks once here.
            self.timezone = self.default_timezone()

    def to_internal_value(self, value):
        if isinstance(value, str):
            parsed = serializers.DateTimeField(default_timezone=dt.UTC).to_internal_value(value)
            if value.strip().endswith(("Z", "z")) or _has_offset(value):
                moment = parsed
            else:
                self.fail("naive")
        else:
            moment = super().to_internal_value(value)
            if timezone.is_naive(moment):
                self.fail("naive")
        if not 1900 <= moment.year <= 2100:
            self.fail("implausible")
        try:
            return moment.astimezone(dt.UTC)  # PostgreSQL takes UTC offsets up to 15:59 only
        except OverflowError:
            self.fail("implausible")


def _has_offset(value: str) -> bool:
    try:
        return dt.datetime.fromisoformat(value.strip()).tzinfo is not None
    except ValueError:
        return False


class _UTCIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is None:
                raise DjangoValidationError(
                    "Give the time with its UTC offset, for example 2026-11-23T09:00:00-05:00.", code="invalid"
                )
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            if not 1900 <= moment.year <= 2100:
                raise OverflowError
            # PostgreSQL takes UTC offsets up to 15:59; ISO 8601 allows more. Compare in UTC.
            return moment.astimezone(dt.UTC)
        except OverflowError:
            raise DjangoValidationError("Enter a time between the years 1900 and 2100.", code="invalid") from None


class OffsetDateTimeFilter(django_filters.IsoDateTimeFilter):
    """A moment in a query string, in ISO 8601 (e.g. 2026-11-23T09:00:00-05:00)."""

    field_class = _UTCIsoDateTimeField


class PlausibleDateField(serializers.DateField):
    default_error_messages = {"implausible": "Enter a date between the years 1900 and 2100."}

    def to_internal_value(self, value):
        day = super().to_internal_value(value)
        if not 1900 <= day.year <= 2100:
            self.fail("implausible")
        return day


class ClinicModelSerializer(serializers.ModelSerializer):
    """Model serializers of the API: times with offsets, plausible dates."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: OffsetDateTimeField,
        models.DateField: PlausibleDateField,
    }


def viewer(context: Mapping[str, Any]):
    request = context.get("request")
    return getattr(request, "user", None)


@extend_schema_field(OpenApiTypes.UUID)
class VisiblePatientField(serializers.PrimaryKeyRelatedField):
    """A patient id the caller may see; any other id reads as "does not exist", the
    same answer as an id nobody has, so a body cannot probe for other patients."""

    def get_queryset(self):
        from patients.models import Patient

        user = viewer(self.context)
        return access.visible_patients(user) if user is not None else Patient.objects.none()


# --- Login, logout, me -------------------------------------------------------------------


def role_of(user) -> str | None:
    """The one role a client should present the user as (superuser first)."""
    if user.is_superuser:
        return "superuser"
    roles = access.user_roles(user)
    for role in (Role.CLINICIAN, Role.SCHEDULER, Role.PATIENT):
        if role in roles:
            return role.value
    return None


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    first_name = serializers.CharField(read_only=True)
    last_name = serializers.CharField(read_only=True)
    role = serializers.SerializerMethodField(help_text="superuser, clinician, scheduler, patient, or null.")
    patient = serializers.SerializerMethodField(help_text="A patient's own record id (patients only).")

    def get_role(self, user) -> str | None:
        return role_of(user)

    def get_patient(self, user) -> str | None:
        if not access.has_role(user, Role.PATIENT):
            return None
        patient = getattr(user, "patient", None)
        return str(patient.pk) if patient is not None else None


class MeView(APIView):
    """The signed-in user and their role."""

    @extend_schema(responses=MeSerializer, operation_id="me_retrieve")
    def get(self, request):
        return Response(MeSerializer(request.user).data)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as 'Authorization: Token <token>'.")
    expiry = OffsetDateTimeField()
    user = MeSerializer()


class TokenObtainSerializer(AuthTokenSerializer):
    """A username and password, and for an account with two-factor authentication the code."""

    otp = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=32,
        write_only=True,
        help_text=(
            "For an account with two-factor authentication (required then): the 6-digit code from "
            "the authenticator app, or one of the account's backup codes (each works once)."
        ),
    )


@method_decorator(transaction.non_atomic_requests, name="dispatch")
class TokenObtainView(APIView):
    """Exchange a username and password for an API token that expires.

    Tokens are stored hashed (django-rest-knox) and live CLINIC_API_TOKEN_HOURS hours.
    Throttled per address, and locked out after repeated failures as the login page is
    (django-axes). Not one transaction with the request: a refused login must still be
    counted, not rolled back with the 400.

    An account with two-factor authentication also sends ``otp``, the code from its
    authenticator app or a backup code: without it, 400 saying so; a wrong one is a 400
    counted toward the lockout like a wrong password (clinic/two_factor.py). When the
    clinic requires two-factor (CLINIC_REQUIRE_TWO_FACTOR), staff who have not set it up
    on the website get a 403 telling them to.
    """

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    throttle_scope = "token"

    def handle_exception(self, exc):
        # DRF marks "the request's transaction" for rollback on an error; this view has
        # none of its own, so an enclosing one (a test's) must keep its state.
        connection = transaction.get_connection()
        enclosing = connection.needs_rollback if connection.in_atomic_block else None
        response = super().handle_exception(exc)
        if enclosing is not None:
            connection.set_rollback(enclosing)
        return response

    @extend_schema(
        request=TokenObtainSerializer,
        responses={
            200: TokenSerializer,
            403: OpenApiResponse(
                response=inline_serializer("TwoFactorSetupRequired", {"detail": serializers.CharField()}),
                description="The clinic requires two-factor authentication and the account has not set it up.",
            ),
        },
        auth=[],
        operation_id="auth_token_create",
    )
    def post(self, request):
        from clinic import two_factor

        # Django's own request: django-axes marks a lockout on it, and its middleware answers.
        credentials = TokenObtainSerializer(data=request.data, context={"request": request._request})
        credentials.is_valid(raise_exception=True)
        user = credentials.validated_data["user"]
        if role_of(user) is None:
            raise exceptions.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: ["This account has no clinic role."]})
        refusal = two_factor.check_api_code(request._request, user, credentials.validated_data.get("otp", ""))
        if refusal is not None:
            kind, message = refusal
            if kind == "setup":
                raise exceptions.PermissionDenied(message, code="two_factor_setup_required")
            raise exceptions.ValidationError({"otp": [message]}, code=f"otp_{kind}")
        with transaction.atomic():
            instance, token = get_token_model().objects.create(user=user)
        return Response(TokenSerializer({"token": token, "expiry": instance.expiry, "user": user}).data)


class TokenRevokeView(APIView):
    """Revoke the token of this request (log out of the API)."""

    @extend_schema(request=None, responses={204: OpenApiResponse(description="The token no longer works.")})
    def post(self, request):
        token = request.auth
        if not isinstance(token, get_token_model()):
            raise exceptions.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: ["Log out with the token you want to revoke."]}
            )
        token.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- The schema ----------------------------------------------------------------------------


def document_errors(result, generator, request, public):
    """Add the error answers every operation can give to the schema (spectacular lists
    only the successes): 400 for a body or filter it refuses, 401/403 for who may call
    it, 404 for a record the caller may not see (or a page past the end of a list),
    429 when throttled."""
    error = {
        "description": "An error: 'detail', or a list of messages per field (and 'non_field_errors').",
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": True},
            }
        },
    }
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            codes = ["400", "429"]
            if operation.get("security") != [] and operation.get("security") != [{}]:
                codes += ["401", "403"]
            if "{" in path or "parameters" in operation:
                codes.append("404")  # a record the caller may not see; a page past the end
            for code in codes:
                responses.setdefault(code, error)
    return result
