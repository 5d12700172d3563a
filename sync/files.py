"""Small helpers for files that must survive a power cut."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flush ``folder``'s entries to disk: after an ``os.replace`` into it, the new name
    is durable only once its directory is."""
    fd = os.open(Path(folder), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
