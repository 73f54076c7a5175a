"""Alembic's entry point for Nimbus's schema migrations.

Not run by hand: ``nimbus db upgrade`` (``nimbus.migrate``) builds the alembic
configuration in code and hands this script an open SQLAlchemy connection in
``config.attributes["connection"]`` (a sync connection, from
``AsyncConnection.run_sync``), so that core needs no engine and no asyncio.
Offline mode (``sqlalchemy.url`` set, no connection) renders SQL instead.

Scripts are rendered in batch mode, so that one script alters tables on SQLite
(which rebuilds a table to change it) as well as on PostgreSQL and MariaDB.
Constraint names come from the naming convention in ``nimbus.core.db.meta``.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from alembic.operations import ops

from nimbus.core.db.schema import metadata


def tidy_generated(_context: Any, _revision: Any, directives: Any) -> None:
    """Shape what ``nimbus db revision`` generates.

    No script at all when nothing changed. In downgrades, a table is dropped without
    first dropping its indexes one by one: MariaDB refuses to drop an index a foreign
    key needs, and dropping the table takes its indexes with it on every database.
    """
    if all(s.upgrade_ops.is_empty() for s in directives):
        directives[:] = []
    for script in directives:
        for downgrade in script.downgrade_ops_list:
            dropped = {op.table_name for op in downgrade.ops if isinstance(op, ops.DropTableOp)}
            downgrade.ops = [
                op for op in downgrade.ops
                if not (isinstance(op, ops.ModifyTableOps) and op.table_name in dropped
                        and all(isinstance(sub, ops.DropIndexOp) for sub in op.ops))
            ]


def run() -> None:
    """Run the migrations alembic asked for, on the connection Nimbus gave."""
    config = context.config
    connection = config.attributes.get("connection")
    url = None if connection is not None else config.get_main_option("sqlalchemy.url")
    if connection is None and not url:
        raise RuntimeError("run migrations with `nimbus db upgrade`")
    context.configure(
        connection=connection, url=url, literal_binds=connection is None,
        target_metadata=metadata, render_as_batch=True, compare_type=True,
        process_revision_directives=tidy_generated,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
