"""Running a playbook: the run context built, every step prepared, the lock, plan then apply."""
