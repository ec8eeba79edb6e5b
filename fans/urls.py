"""Public pages for fans. Campaign slugs are top-level paths, so fixed one-segment paths come first; then the
campaign page, the hot path, early (resolving tries the patterns in order); then the longer paths, which its
one-segment pattern can't match.

Every fixed first segment here must be in fans.reserved.RESERVED_SLUGS (a test checks it).
"""

from django.urls import path

from fans import email_views, musickit, views

app_name = "fans"

urlpatterns = [
    # Fixed one-segment paths, before the campaign page's pattern would take them for slugs.
    path("health/", views.health, name="health"),
    path("privacy/", views.privacy_notice, name="privacy_notice"),
    path("favicon.ico", views.favicon, name="favicon"),
    # The campaign page.
    path("<slug:slug>/", views.campaign, name="campaign"),
    # Longer fixed paths. The callback's absolute URL is the redirect URI registered with each service.
    path("oauth/<str:service>/callback/", views.oauth_callback, name="oauth_callback"),
    path("oauth/apple_music/musickit/", musickit.authorize_page, name="musickit"),
    path("oauth/apple_music/token/", musickit.receive_token, name="musickit_token"),
    path("revoke/<str:token>/", views.revoke, name="revoke"),
    path("forms/token/", views.form_token, name="form_token"),
    path("privacy/link/", views.privacy_link, name="privacy_link"),  # before the token pattern: "link" is none
    path("privacy/<str:token>/", views.privacy_overview, name="privacy"),
    path("privacy/<str:token>/export.json", views.privacy_export, name="privacy_export"),
    path("privacy/<str:token>/revoke/<int:subscription_id>/", views.privacy_revoke, name="privacy_revoke"),
    path("privacy/<str:token>/stop-email/<int:subscription_id>/", views.privacy_stop_email, name="privacy_stop_email"),
    path("privacy/<str:token>/erase/", views.privacy_erase, name="privacy_erase"),
    # The release-day email's links (fans/release_email.py): one fixed prefix, /e/.
    path("e/o/<str:token>.gif", email_views.email_open, name="email_open"),
    path("e/c/<str:token>/", email_views.email_click, name="email_click"),
    path("e/u/<str:token>/", email_views.email_unsubscribe, name="email_unsubscribe"),
    path("e/confirm/<str:token>/", views.confirm_email, name="confirm_email"),
    # The campaign's other pages.
    path("<slug:slug>/presave/<str:service>/", views.presave, name="presave"),
    path("<slug:slug>/thanks/", views.thanks, name="thanks"),
    path("<slug:slug>/email/", views.email_signup, name="email_signup"),
    path("<slug:slug>/listen/<slug:platform>/", views.listen, name="listen"),
]
