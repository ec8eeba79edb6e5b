"""The indexes added to big tables since fans 0023 (the release emails' unique one on the lower-cased address, the
consent records' and fans' lookups by address) are built without locking their table against writes while they
build: CREATE INDEX CONCURRENTLY, in migrations that are not atomic (PostgreSQL builds concurrently only outside
a transaction). The SQLite demo builds them the ordinary way (its migration is checked by `manage.py migrate`)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.migrations import back_to_the_latest_after, migrate  # noqa: F401 (fixture)

BEFORE = ("fans", "0022_one_signup_per_address_whatever_its_case")
LATEST = ("fans", "0026_address_lookups")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_latest_after")
def test_the_new_indexes_on_big_tables_are_built_concurrently():
    migrate(BEFORE)
    with CaptureQueriesContext(connection) as queries:
        migrate(LATEST)

    built = [" ".join(q["sql"].split()[:6]) for q in queries if q["sql"].lstrip().upper().startswith("CREATE")]
    assert built == [
        'CREATE INDEX CONCURRENTLY "release_email_by_address" ON "fans_releaseemail"',
        'CREATE UNIQUE INDEX CONCURRENTLY "one_release_email_whatever_the_case" ON',
        'CREATE INDEX CONCURRENTLY "consent_by_address" ON "fans_consentrecord"',
        'CREATE INDEX CONCURRENTLY "fan_by_address" ON "fans_fan"',
    ]
