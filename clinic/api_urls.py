"""The REST API: /api/v1/ (resources), /api/schema/ (OpenAPI) and /api/docs/ (Swagger UI).

No Redoc page: its template loads fonts from Google; Swagger UI is served whole from the sidecar.
"""

from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from clinic import api
from maintenance.api import BoosterViewSet, MaintenancePlanViewSet, NotificationViewSet
from patients.api import PatientViewSet, PHQ9ViewSet
from sessions.api import InfusionViewSet, ProtocolViewSet, SeriesViewSet

router = DefaultRouter()
router.include_format_suffixes = False
router.register("patients", PatientViewSet, basename="patient")
router.register("phq9", PHQ9ViewSet, basename="phq9")
router.register("protocols", ProtocolViewSet, basename="protocol")
router.register("series", SeriesViewSet, basename="series")
router.register("infusions", InfusionViewSet, basename="infusion")
router.register("boosters", BoosterViewSet, basename="booster")
router.register("maintenance-plans", MaintenancePlanViewSet, basename="maintenance-plan")
router.register("notifications", NotificationViewSet, basename="notification")

app_name = "api"

urlpatterns = [
    path("v1/auth/token/", api.TokenObtainView.as_view(), name="token"),
    path("v1/auth/logout/", api.TokenRevokeView.as_view(), name="logout"),
    path("v1/me/", api.MeView.as_view(), name="me"),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI's stylesheet draws its icons as data: SVG images: this page alone allows
    # them (img-src data:); the rest of the site's Content-Security-Policy holds here too.
    path(
        "docs/",
        csp_update({"img-src": ["data:"]})(SpectacularSwaggerSplitView.as_view(url_name="api:schema")),
        name="docs",
    ),
]
