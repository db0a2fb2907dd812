"""Disk checks that need no torch: free space, and a writable output dir before any work
(:class:`gan_interp.callbacks.checkpointing.AtomicCheckpointIO` checks free space before each checkpoint)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from gan_interp.errors import GanInterpError

MIB = 2**20


def free_mb(path: str | Path) -> float:
    """Free MiB on the file system holding ``path`` (its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free / MIB


def preflight_output_dir(run_dir: str | Path, min_free_mb: float = 200.0) -> Path:
    """Fail fast (one line) if the run dir can't be created/written or the disk is (nearly) full."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write_test_{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        reason = "disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or type(exc).__name__)
        raise GanInterpError(
            f"output dir {run_dir} is not writable ({reason}); set hydra.run.dir=/writable/path or fix its permissions"
        ) from None
    free = free_mb(run_dir)
    if free < min_free_mb:
        raise GanInterpError(
            f"only {free:.0f} MiB free at {run_dir} (need >= {min_free_mb:.0f} MiB for checkpoints); "
            "free disk space, choose another hydra.run.dir, or lower min_free_disk_mb"
        )
    return run_dir
