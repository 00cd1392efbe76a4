"""The patient portal: a patient sees only their own progress and appointments."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.urls import reverse_lazy
from django.utils import timezone

from clinic.decorators import patient_required
from patients.models import Patient
from sessions.models import SessionKind, SessionStatus


@patient_required
def home(request):
    try:
        patient = request.user.patient
    except Patient.DoesNotExist:
        raise PermissionDenied("This account is not linked to a patient record.") from None
    latest = patient.phq9_assessments.order_by("-taken_at").first()
    sessions = patient.infusion_sessions.exclude(status=SessionStatus.CANCELLED)
    today = timezone.localdate()
    return render(
        request,
        "portal/home.html",
        {
            "nav": "portal",
            "patient": patient,
            "latest": latest,
            "upcoming": sessions.filter(status=SessionStatus.SCHEDULED, scheduled_on__gte=today).order_by(
                "scheduled_at"
            ),
            "past": sessions.filter(status=SessionStatus.COMPLETED).order_by("-scheduled_at"),
            "BOOSTER": SessionKind.BOOSTER,
        },
    )


class WelcomeView(auth_views.PasswordResetConfirmView):
    """The invitation link: the patient chooses a password (the link then stops working)."""

    template_name = "portal/welcome.html"
    success_url = reverse_lazy("login")

    def form_valid(self, form):
        messages.success(self.request, "Your password is set. Log in to see your progress.")
        return super().form_valid(form)
