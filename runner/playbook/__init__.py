"""Loading a playbook: YAML with locations, the schema and its registry, templates, references.

Nothing here runs anything: no database, no file written.
"""
