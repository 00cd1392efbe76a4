from django.apps import AppConfig


class InfusionsConfig(AppConfig):
    # The package is "sessions"; the label must differ from django.contrib.sessions'.
    name = "sessions"
    label = "infusions"
    verbose_name = "Induction series and infusions"
