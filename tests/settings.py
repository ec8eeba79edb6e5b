"""Test settings: the project's settings with test values, on PostgreSQL. Environment variables still win."""

import os

# The sandbox is plain aiohttp (no Django): importing it here, before the settings exist, is safe.
from delivery.sandbox.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

TEST_ENVIRONMENT = {
    "ENV_FILE": "/dev/null",  # never read the demo's .env
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/presave",
    "DEBUG": "false",
    "HTTPS": "false",
    "SECRET_KEY": "test-only-secret-key-that-is-long-enough-for-django-checks-0123456789",
    # Two keys: tests rotate between them. Never use these anywhere else.
    "TOKEN_ENCRYPTION_KEYS": (
        "test-b:YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI=,test-a:YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE="
    ),
    "SPOTIFY_CLIENT_ID": DEFAULT_CLIENT_ID,  # the sandbox's registered app
    "SPOTIFY_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
    "SPOTIFY_ENABLED": "true",
    "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "DELIVERY_RETRY_BASE_SECONDS": "0.2",
    "DELIVERY_MAX_RETRY_AFTER_SECONDS": "10",
    "SERVICE_TIMEOUT_SECONDS": "3",
    "Q_POLL": "0.2",
    "LOG_LEVEL": "WARNING",
    "FUNNEL_BATCH_SIZE": "1",  # page views written at once (production batches them: fans/tracking.py)
}
for name, value in TEST_ENVIRONMENT.items():
    os.environ.setdefault(name, value)

from presave_site.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests
