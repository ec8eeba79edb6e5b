"""Running one migration on the real database: `migrate` to a named state, and the fixture that puts every
migration back afterwards (import it into a test module that migrates)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate(target: tuple[str, str]) -> None:
    MigrationExecutor(connection).migrate([target])


@pytest.fixture
def back_to_the_latest_after():
    """The later tests need every migration applied again, whatever this one migrated back to."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
