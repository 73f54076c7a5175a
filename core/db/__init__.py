"""The database: SQLAlchemy Core schema, migrations, and the Store of statements."""
