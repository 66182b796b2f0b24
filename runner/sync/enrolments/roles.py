"""The role assignment an enrol plugin's enrol_user makes (what a line assigns, and
what a snapshot's missing user loses)."""

from __future__ import annotations

#: Moodle's enrol plugins whose roles are not protected (their roles_protected() is
#: false): they assign roles as manual ones, component '' and item 0
UNPROTECTED_ROLES = frozenset({"manual", "self", "flatfile", "paypal"})


def role_key(role_id: int, plugin: str, enrol_id: int) -> tuple[int, str, int]:
    """The role assignment a plugin's enrol_user makes: as a manual one ('', 0) for a
    plugin whose roles are not protected, else tagged with its component and instance
    (Moodle's enrol_plugin::enrol_user)."""
    if plugin in UNPROTECTED_ROLES:
        return (role_id, "", 0)
    return (role_id, f"enrol_{plugin}", enrol_id)
