"""Public pages for fans. Campaign slugs are top-level paths, so fixed paths come first."""

from django.urls import path

app_name = "fans"

urlpatterns: list = []
