from django.urls import path

from patients import views

app_name = "patients"

urlpatterns = [
    path("", views.patient_list, name="list"),
    path("new/", views.patient_create, name="create"),
    path("<uuid:pk>/", views.patient_detail, name="detail"),
    path("<uuid:pk>/edit/", views.patient_edit, name="edit"),
    path("<uuid:pk>/invite/", views.patient_invite, name="invite"),
    path("<uuid:pk>/phq9/new/", views.phq9_create, name="phq9_new"),
    path("phq9/<uuid:pk>/acknowledge/", views.phq9_acknowledge, name="phq9_acknowledge"),
]
