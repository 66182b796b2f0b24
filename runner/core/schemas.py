"""What postsync's published JSON Schemas (playbook, record, output) have in common."""

from __future__ import annotations

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"
