"""The site's URLs plus the benchmark's two baselines (only under clinic.bench_settings):

- ``/bench/trivial/``: a trivial page of the same stack (every middleware, the session,
  the access log, the base template) that reads nothing of any patient;
- ``/bench/bare-api/``: a bare DRF endpoint (same authentication, permission and
  renderer) answering a constant.
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from clinic.urls import urlpatterns as site_urlpatterns


@login_required
def trivial(request):
    return render(request, "bench/trivial.html")


class BareApi(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("bench/trivial/", trivial, name="bench-trivial"),
    path("bench/bare-api/", BareApi.as_view(), name="bench-bare-api"),
    *site_urlpatterns,
]
handler403 = "clinic.views.permission_denied"
handler404 = "clinic.views.page_not_found"
handler500 = "clinic.views.server_error"
