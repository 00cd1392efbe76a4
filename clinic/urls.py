from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from clinic import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("health/", views.health, name="health"),
    path("admin/", admin.site.urls),
]
