"""Checkpoints: everything a run needs to continue after a crash, in one file written atomically.

    save_checkpoint(path, {"model": ..., "optimizer": ..., "global_step": ..., ...})
    state = load_checkpoint(path)        # None when there is none yet

The file is written to a temporary name and renamed, so a crash during the write leaves the previous
checkpoint intact (a half-written checkpoint would lose the whole run).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def save_checkpoint(path, state: dict) -> Path:
    """Write `state` (tensors, numbers, NumPy arrays, plain dicts) to `path`, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one, never half
    return path


def load_checkpoint(path) -> dict | None:
    """The state saved at `path`, or None when no checkpoint exists there."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        # weights_only=False: checkpoints hold NumPy RNG states and config dicts, and are our own files.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file
        raise RuntimeError(f"could not read the checkpoint {path}: {err}. Delete it to start the run "
                           "from scratch, or point --run-dir at another directory.") from err
