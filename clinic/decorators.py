"""View decorators for the clinic's roles (the rules themselves live in patients/access.py).

Anonymous visitors are sent to the login page; a signed-in user without the role gets
403 Forbidden.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from patients import access


def role_required(check: Callable) -> Callable:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


#: Clinicians, schedulers and superusers.
staff_required = role_required(access.is_staff_member)
#: Clinicians and superusers: clinical data.
clinician_required = role_required(access.is_clinician)
#: Patients, for the portal.
patient_required = role_required(lambda user: access.has_role(user, access.Role.PATIENT))
