"""Scheduler pages: the booster board, booking boosters, maintenance plans, the inbox."""

from django.urls import path

from maintenance import views

app_name = "maintenance"

urlpatterns = [
    path("boosters/", views.board, name="board"),
    path("patients/<uuid:pk>/boosters/new/", views.booster_new, name="booster_new"),
    path("patients/<uuid:pk>/plan/", views.plan_edit, name="plan_edit"),
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/read-all/", views.read_all, name="read_all"),
    path("inbox/<uuid:pk>/read/", views.notification_read, name="notification_read"),
]
