"""The audit trail's two middlewares: context for the change history, a row per read."""

from __future__ import annotations

import logging

import pghistory.middleware
from axes.helpers import get_client_ip_address
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse

from audit import access

logger = logging.getLogger("audit")


class HistoryContextMiddleware(pghistory.middleware.HistoryMiddleware):
    """Every change a request makes is recorded with the user (also when DRF signs the
    user in by token, later in the view), the path without its query string and the
    client's address."""

    def get_context(self, request: HttpRequest) -> dict:
        return {**super().get_context(request), "ip": get_client_ip_address(request)}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if connection.vendor != "postgresql":
            # The embedded SQLite keeps no change history (no triggers) and cannot take
            # the context pghistory would prepend to every statement.
            return self.get_response(request)
        return super().__call__(request)


class AccessLogMiddleware:
    """One access-log row per signed-in request, written after the response is made, so
    the row says whether the record was shown or refused."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        try:
            access.record(request, response)
        except DatabaseError:
            logger.exception("The access log could not be written (%s %s).", request.method, request.path)
            if request.method in ("GET", "HEAD"):
                # Fail closed: a record whose reading cannot be kept is not shown.
                return HttpResponse("This page cannot be shown: the audit trail is unavailable.", status=503)
        return response
