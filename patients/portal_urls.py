from django.urls import path

from patients import portal

app_name = "portal"

urlpatterns = [
    path("", portal.home, name="home"),
    path("questionnaire/", portal.phq9, name="phq9"),
    path("help/", portal.crisis, name="crisis"),
    path("my-scores.csv", portal.download, name="download"),
    path("welcome/<uidb64>/<token>/", portal.WelcomeView.as_view(), name="welcome"),
]
