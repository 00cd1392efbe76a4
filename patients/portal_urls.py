from django.urls import path

from patients import portal

app_name = "portal"

urlpatterns = [
    path("", portal.home, name="home"),
    path("welcome/<uidb64>/<token>/", portal.WelcomeView.as_view(), name="welcome"),
]
