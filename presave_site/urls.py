"""The site's URLs: the admin, the fans' OAuth and public pages (last: campaign slugs are top-level)."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from fans.ratelimits import admin_login_rate, limited

admin.site.site_header = "Pre-save console"
admin.site.site_title = "Pre-save console"
admin.site.index_title = "Campaigns, releases and fans"


# The console's sign-in, limited per IP (a password guesser gets the 429 page): before the admin's own URLs.
admin_login = limited(rate=admin_login_rate)(admin.site.login)

urlpatterns = [
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("", include("fans.urls")),
]
if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
