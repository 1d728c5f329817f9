"""What every algorithm's config shares: how a run executes, as opposed to what it learns.

Each algorithm's frozen config dataclass (PPOConfig, DQNConfig, ...) derives from `RunOptions`, so these
fields, their CLI flags and their checks are written once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class RunOptions:
    """Execution options shared by every algorithm's config."""

    backend: str = "auto"
    """Vector-env backend: auto (fast when rlcore.envs.fast has the env, else serial), fast, serial, subprocess."""
    device: str = "cpu"
    """torch device of the networks, e.g. cpu or cuda."""
    torch_threads: int = 1
    """Intra-op threads on CPU. 1 is fastest for small networks (more threads stall on shared cores)."""
    run_dir: str | None = None
    """Where metrics.csv, config.json and checkpoint.pt go (None: nothing written)."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = False
    """Also write TensorBoard event files to run_dir."""

    def require_positive(self, *names: str) -> None:
        """Raise ValueError naming the first of these fields that is not a positive integer."""
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be a positive integer, got {value!r}.")

    def torch_device(self) -> torch.device:
        """The run's torch device; on CPU, also sets torch's intra-op thread count to torch_threads."""
        if self.device == "cpu":
            torch.set_num_threads(self.torch_threads)
        return torch.device(self.device)
