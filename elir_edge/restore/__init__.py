"""Stage 5, restore: a user's images of any size -> restored PNGs through any artifact (whole-image or
seamless overlapping tiles), plus side-by-side strips.

    from elir_edge.restore import RestoreOptions, restore_images
"""

from elir_edge.restore.stage import RestoreOptions, restore_images

__all__ = ["RestoreOptions", "restore_images"]
