"""`postsync undo RECORD`: control files that reverse a run, made from its change
journal (runner.record.journal), to be previewed and applied like any control file."""
