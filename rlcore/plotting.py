"""Learning curves over seeds with bands, reference bands, and a GIF of a policy acting.

    from rlcore.plotting import plot_learning_curves, save_policy_gif
    fig = plot_learning_curves({"rlcore PPO": results},                  # Results or run directories
                               reference=(490.04, 7.47, "CleanRL ppo.py, 500k steps"))
    save_policy_gif("CartPole-v1", policy, "cartpole.gif", seed=0)

A single seed's curve says little (deep RL is unstable; a setting that works may succeed on one seed in
three), so curves are drawn as the mean over seeds with a band: every seed's curve faintly, and the
interval between the lowest and highest seed, or a 95% t-interval of the mean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rlcore.metrics import Result, read_metrics


def episode_curve(run: Result | str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps [E], returns [E]) of a run's training episodes, from a Result or a run directory."""
    if isinstance(run, Result):
        return run.episode_steps.astype(float), run.episode_returns.astype(float)
    series = read_metrics(run).get("charts/episodic_return", [])
    if not series:
        raise ValueError(f"{run} has no charts/episodic_return rows; did the run finish any episode?")
    steps, values = np.array(series, dtype=float).T
    return steps, values


def curves_on_grid(runs: Sequence[Result | str | Path], grid: np.ndarray, window: int = 100) -> np.ndarray:
    """Each run's return, averaged over its last `window` episodes, read at the steps of `grid`.

    runs: S runs; grid [G] environment steps. Returns [S, G]; NaN before a run's first episode ended.
    (This is CleanRL's "mean of the last 100 training episodes", as a curve.)"""
    out = np.full((len(runs), len(grid)), np.nan)
    for s, run in enumerate(runs):
        steps, returns = episode_curve(run)
        csum = np.concatenate([[0.0], np.cumsum(returns)])
        k = np.searchsorted(steps, grid, side="right")  # episodes ended by each grid step
        have = k > 0
        lo = np.maximum(k - window, 0)
        out[s, have] = (csum[k[have]] - csum[lo[have]]) / (k[have] - lo[have])
    return out


def plot_learning_curves(groups: dict[str, Sequence[Result | str | Path]], *, reference=None, grid_points: int = 200,
                         window: int = 100, band: str = "minmax", ax=None, title: str | None = None):
    """Mean curve and band per group of runs (seeds), on a shared step axis.

    groups: {label: [runs]}; reference: (mean, sd, label) drawn as a horizontal band mean +- sd, or None;
    band: "minmax" (lowest to highest seed) or "ci95" (t-interval of the mean). Returns the Figure."""
    import matplotlib.pyplot as plt
    from scipy import stats

    if band not in ("minmax", "ci95"):
        raise ValueError(f"band must be 'minmax' or 'ci95', got {band!r}.")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
    else:
        fig = ax.figure
    last = max(float(episode_curve(run)[0].max()) for runs in groups.values() for run in runs)
    grid = np.linspace(0, last, grid_points)
    for (label, runs), colour in zip(groups.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        curves = curves_on_grid(runs, grid, window)  # [S, G]
        for curve in curves:
            ax.plot(grid, curve, color=colour, lw=0.6, alpha=0.3)
        with np.errstate(invalid="ignore"), _ignore_nan_warnings():
            mean = np.nanmean(curves, axis=0)
            if band == "minmax":
                low, high = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
            else:
                n = np.sum(~np.isnan(curves), axis=0)
                half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * np.nanstd(curves, axis=0, ddof=1) / np.sqrt(n)
                low, high = mean - half, mean + half
        ax.fill_between(grid, low, high, color=colour, alpha=0.2, lw=0)
        ax.plot(grid, mean, color=colour, lw=1.8, label=f"{label} ({len(runs)} seeds)")
    if reference is not None:
        mean_ref, sd_ref, ref_label = reference
        ax.axhspan(mean_ref - sd_ref, mean_ref + sd_ref, color="0.6", alpha=0.25, lw=0)
        ax.axhline(mean_ref, color="0.3", ls="--", lw=1.0, label=ref_label)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"mean return, last {window} training episodes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


class _ignore_nan_warnings:
    """nanmean of an all-NaN column (before any episode ended) warns; that column is simply empty."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def save_policy_gif(env_id: str, policy: Callable, path, *, seed: int = 0, max_steps: int = 500, fps: int = 30,
                    **env_kwargs) -> Path:
    """Run `policy(obs) -> action` for one episode with rendering and write an animated GIF to `path`.

    Watching the agent is the quickest check that the numbers mean what you think. Returns the path."""
    import gymnasium as gym
    from PIL import Image

    env = gym.make(env_id, render_mode="rgb_array", **env_kwargs)
    try:
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
        for _ in range(max_steps):
            obs, _, terminated, truncated, _ = env.step(policy(obs))
            frames.append(env.render())
            if terminated or truncated:
                break
    finally:
        env.close()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def torch_policy(agent, deterministic: bool = True) -> Callable:
    """A policy(obs) -> action for one observation from an rlcore ActorCritic (the mode when deterministic)."""
    import torch

    def policy(obs):
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).unsqueeze(0)
            if deterministic:
                out = agent.actor(x)[0]
                return out.numpy() if agent.continuous else int(out.argmax())
            action, _, _ = agent.act(x)
            return action[0].numpy() if agent.continuous else int(action[0])

    return policy
