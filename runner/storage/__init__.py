"""Files as postsync stores them: atomic writes, paths confined to the area, object storage."""
