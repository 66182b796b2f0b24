"""The run record: what the sync did with each control file (the model the sync writes and
the treatments read), saved, loaded and pruned under AREA/.postsync/runs/.
"""
