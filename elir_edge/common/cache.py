"""elir-edge's own cache folder (compiled models a runtime can load again instead of compiling): never a user's
file, safe to delete, bounded in size. ELIR_EDGE_CACHE names another folder, or `off` for none."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CACHE_ENV = "ELIR_EDGE_CACHE"
CAP_BYTES = 1 << 30  # per kind of cache, all its sub-folders together: past it, the oldest-written entries go


def cache_dir(kind: str) -> Path | None:
    """The folder for one kind of entry, made if missing; None where caching is off or the folder cannot be
    written (a read-only home): the caller then works without a cache."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen == "off":
        return None
    base = Path(chosen).expanduser().resolve() if chosen else \
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "elir-edge"
    folder = base / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def prune(folder: Path, pattern: str, cap: int = CAP_BYTES) -> None:
    """Delete the oldest-written entries (files named like `pattern`) under `folder` until they hold at most `cap`
    bytes; any other file there (ELIR_EDGE_CACHE may name a user's folder) is neither counted nor touched. Never
    fails: another process may be deleting too (a file gone is skipped), or the user may have removed the folder."""
    entries = []
    with contextlib.suppress(OSError):
        for p in folder.rglob(pattern):
            with contextlib.suppress(OSError):
                if p.is_file():
                    st = p.stat()
                    entries.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in entries)
    for _, size, p in sorted(entries):
        if total <= cap:
            return
        with contextlib.suppress(OSError):
            p.unlink()
        total -= size
