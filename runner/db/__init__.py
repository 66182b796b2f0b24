"""The database layer: Moodle's own tables through SQLAlchemy Core (imported only here)."""
