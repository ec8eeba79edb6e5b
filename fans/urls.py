"""Public pages for fans. Campaign slugs are top-level paths, so fixed paths come first.

Every fixed first segment here must be in fans.reserved.RESERVED_SLUGS (a test checks it).
"""

from django.urls import path

from fans import views

app_name = "fans"

urlpatterns = [
    # Fixed paths. The callback's absolute URL is the redirect URI registered with each service.
    path("oauth/<str:service>/callback/", views.oauth_callback, name="oauth_callback"),
    path("revoke/<str:token>/", views.revoke, name="revoke"),
    # Campaign pages.
    path("<slug:slug>/", views.campaign, name="campaign"),
    path("<slug:slug>/presave/<str:service>/", views.presave, name="presave"),
    path("<slug:slug>/thanks/", views.thanks, name="thanks"),
]
