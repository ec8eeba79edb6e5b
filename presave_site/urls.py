"""The site's URLs: the admin, the fans' OAuth and public pages (last: campaign slugs are top-level)."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from django_ratelimit.decorators import ratelimit

from fans.geo import rate_limit_key

admin.site.site_header = "Pre-save console"
admin.site.site_title = "Pre-save console"
admin.site.index_title = "Campaigns, releases and fans"


def admin_login_rate(group: str, request) -> str:
    return settings.ADMIN_LOGIN_RATE


# The console's sign-in, limited per IP (a password guesser gets the 429 page): before the admin's own URLs.
admin_login = ratelimit(key=rate_limit_key, rate=admin_login_rate, method=["POST"], block=True)(admin.site.login)

urlpatterns = [
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("", include("fans.urls")),
]
if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
