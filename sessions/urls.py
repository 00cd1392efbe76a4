"""Infusion pages: the clinician's day, the infusion log, series, appointments, the week."""

from django.urls import path

from sessions import views

app_name = "infusions"

urlpatterns = [
    path("today/", views.today, name="today"),
    path("calendar/", views.week, name="week"),
    path("outcomes/", views.outcomes, name="outcomes"),
    path("patients/<uuid:pk>/series/new/", views.series_new, name="series_new"),
    path("series/<uuid:pk>/makeup/", views.makeup, name="makeup"),
    path("series/<uuid:pk>/discontinue/", views.series_discontinue, name="series_discontinue"),
    path("<uuid:pk>/", views.detail, name="detail"),
    path("<uuid:pk>/start/", views.start, name="start"),
    path("<uuid:pk>/vitals/", views.vitals, name="vitals"),
    path("<uuid:pk>/side-effects/", views.side_effect, name="side_effect"),
    path("<uuid:pk>/complete/", views.complete, name="complete"),
    path("<uuid:pk>/discharge/", views.discharge, name="discharge"),
    path("<uuid:pk>/sign/", views.sign, name="sign"),
    path("<uuid:pk>/amend/", views.amend, name="amend"),
    path("<uuid:pk>/move/", views.move, name="move"),
    path("<uuid:pk>/cancel/", views.cancel, name="cancel"),
]
