"""The development values of the secrets: what the settings fall back to with DEBUG on (the demo, a laptop).
They are public (they are in this repository), so a deployment using one is checked for (fans/checks.py,
`manage.py check --deploy`): one place for both."""

SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"
TOKEN_ENCRYPTION_KEYS = "dev:ZGV2LW9ubHktdG9rZW4ta2V5LWRvLW5vdC11c2UtISE="
