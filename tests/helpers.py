"""Test helpers shared by the chapter tests."""

from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def chapters() -> list[str]:
    """Chapter ids that have a solution notebook, e.g. ["00_rl_loop", "01_bandits"]."""
    return sorted(p.parent.name for p in (ROOT / "solutions").glob("*/*.ipynb"))


def solution_path(chapter: str) -> Path:
    return ROOT / "solutions" / chapter / f"{chapter}.ipynb"


def solution_namespace(chapter: str) -> dict:
    """Execute the setup and solution cells of a chapter's solution notebook (not its test cells)
    and return the resulting namespace, so tests exercise exactly the code the notebook ships."""
    nb = nbformat.read(solution_path(chapter), as_version=4)
    namespace: dict = {"__name__": f"solution_{chapter}"}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and not meta.get("grade") and (meta.get("solution") or meta.get("grade_id") == "setup"):
            exec(compile(cell.source, f"<{chapter}:{meta.get('grade_id')}>", "exec"), namespace)
    return namespace


def gymnasium_lockstep(envs, env_id: str, n: int, seed: int, steps: int, choose) -> dict[str, int]:
    """Step `envs` (an rlcore vector env of n copies of env_id) and n Gymnasium envs together and assert
    every output is identical: observations, rewards, both flags, final_obs and the episode statistics.

    choose(obs [n, ...]) -> actions [n]. Returns counts of what was exercised: env steps compared,
    terminations and truncations.
    """
    import gymnasium as gym
    import numpy as np

    singles = [gym.make(env_id) for _ in range(n)]
    expected_obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(singles)])
    obs, info = envs.reset(seed=seed)
    assert obs.dtype == np.float32 and obs.shape == expected_obs.shape
    np.testing.assert_array_equal(obs, expected_obs)
    ep_return, ep_length = np.zeros(n), np.zeros(n, dtype=np.int64)
    counts = {"steps": 0, "terminated": 0, "truncated": 0}
    for step in range(steps):
        actions = choose(obs)
        obs, rewards, terminated, truncated, info = envs.step(actions)
        for i, env in enumerate(singles):
            o, r, term, trunc, _ = env.step(int(actions[i]))
            ep_return[i] += r
            ep_length[i] += 1
            where = f"env {i}, step {step}"
            assert rewards[i] == r, where
            assert terminated[i] == term and truncated[i] == trunc, where
            np.testing.assert_array_equal(info["final_obs"][i], o, err_msg=where)
            if term or trunc:
                counts["terminated"] += term
                counts["truncated"] += trunc
                assert info["episode_return"][i] == ep_return[i], where
                assert info["episode_length"][i] == ep_length[i], where
                ep_return[i], ep_length[i] = 0.0, 0
                o, _ = env.reset()  # no seed: the env's own stream continues, as in the vector env
            else:
                assert np.isnan(info["episode_return"][i]) and info["episode_length"][i] == 0, where
            np.testing.assert_array_equal(obs[i], o, err_msg=where)
        counts["steps"] += n
        assert rewards.dtype == np.float32 and terminated.dtype == bool and truncated.dtype == bool
    return counts
