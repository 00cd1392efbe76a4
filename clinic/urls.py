from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from clinic import two_factor, views

# Two-factor authentication (clinic/two_factor.py), under two-factor's own URL names.
two_factor_urls = (
    [
        path("login/", two_factor.LoginView.as_view(), name="login"),  # the same page as "login"
        path("two-factor/", two_factor.ProfileView.as_view(), name="profile"),
        path("two-factor/setup/", two_factor.SetupView.as_view(), name="setup"),
        path("two-factor/setup/qr-code/", two_factor.QRGeneratorView.as_view(), name="qr"),
        path("two-factor/setup/done/", two_factor.SetupCompleteView.as_view(), name="setup_complete"),
        path("two-factor/backup-codes/", two_factor.BackupTokensView.as_view(), name="backup_tokens"),
        path("two-factor/turn-off/", two_factor.DisableView.as_view(), name="disable"),
    ],
    "two_factor",
)

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", two_factor.LoginView.as_view(), name="login"),  # password, then a code if set up
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include(two_factor_urls)),
    path("patients/", include("patients.urls")),
    path("portal/", include("patients.portal_urls")),
    path("infusions/", include("sessions.urls")),
    path("maintenance/", include("maintenance.urls")),
    path("api/", include("clinic.api_urls")),
    path("audit/", include("audit.urls")),
    path("health/", views.health, name="health"),
    path("admin/", admin.site.urls),
]

handler403 = "clinic.views.permission_denied"
handler404 = "clinic.views.page_not_found"
handler500 = "clinic.views.server_error"
