"""What every page needs: the user's roles and their unread notifications."""

from django.conf import settings

from patients import access


def clinic(request) -> dict:
    user = request.user
    context = {
        "CLINIC_NAME": settings.CLINIC_NAME,
        "CLINIC_TIME_ZONE": settings.TIME_ZONE,
        "CLINIC_CRISIS_LINE": settings.CLINIC_CRISIS_LINE,
        "CLINIC_EMERGENCY_NUMBER": settings.CLINIC_EMERGENCY_NUMBER,
    }
    if not user.is_authenticated:
        return context
    is_staff_member = access.is_staff_member(user)
    context |= {
        "is_staff_member": is_staff_member,
        "is_clinician": access.is_clinician(user),
        "is_scheduler": access.has_role(user, access.Role.SCHEDULER),
        "is_patient": access.has_role(user, access.Role.PATIENT),
        "is_auditor": access.is_auditor(user),
    }
    if is_staff_member:
        from maintenance.models import Notification

        context["unread_count"] = Notification.objects.filter(recipient=user).unread().count()
    return context
