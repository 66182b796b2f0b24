"""postsync: declarative runner for LMS synchronisation feeds and their post-treatments."""

__version__ = "0.1.0"
