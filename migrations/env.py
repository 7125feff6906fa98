"""Alembic environment for the neurorl registry.

neurorl calls Alembic programmatically and hands it an open connection
(`config.attributes["connection"]`); batch mode lets SQLite alter tables by copy-and-move.
"""

from alembic import context


def run_migrations() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, render_as_batch=True, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
