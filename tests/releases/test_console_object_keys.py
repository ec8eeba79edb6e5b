"""An object's key typed into a console address (`/admin/<app>/<model>/<key>/change/`): a key with a NUL character
is a 400 in words, never a 500. PostgreSQL's text holds no NUL, and Django Q's tasks have text keys, which the
admin looks up as they are."""

import pytest
from django.contrib import admin
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("page", ["change", "history", "delete"])
def test_every_object_page_refuses_a_nul_in_its_key_with_a_400_in_words(admin_client, page):
    """admin_client is a superuser, so it reaches every model's pages, Django Q's too."""
    answers = {}
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{page}", args=["12\x00"])
        response = admin_client.get(url)
        answers[url] = response.status_code, "holds a NUL character" in response.content.decode()

    assert {url: answer for url, answer in answers.items() if answer != (400, True)} == {}
    assert reverse(f"admin:django_q_failure_{page}", args=["12\x00"]) in answers
