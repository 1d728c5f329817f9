"""Making environments: one Gymnasium env (`make_env`) or N of them behind one step (`make_vector`).

    env = make_env("CartPole-v1")                                   # a gymnasium.Env
    envs = make_vector("CartPole-v1", 8, seed=0)                    # a VectorEnv, 8 copies
    envs = make_vector("CartPole-v1", 64, backend="fast", seed=0)   # the batched NumPy CartPole

Backends of make_vector (all follow the VectorEnv protocol of rlcore.envs.vector):
    "serial"      SerialVectorEnv: the N envs in a loop in this process (the default).
    "subprocess"  SubprocessVectorEnv: the N envs in num_workers worker processes.
    "fast"        a batched implementation from rlcore.envs.fast (CartPole-v1, Acrobot-v1, MountainCar-v0): one object that
                  steps all N envs with array operations; an error for ids that have none.
    "auto"        "fast" where rlcore.envs.fast has the id, "serial" otherwise.
"""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium as gym

from rlcore.envs import probes  # noqa: F401  (registers the rlcore/... probe ids)
from rlcore.envs.vector import SerialVectorEnv, SubprocessVectorEnv, VectorEnv, _check_seed

__all__ = ["make_env", "make_vector", "BACKENDS", "FAST_ENVS"]

BACKENDS = ("serial", "subprocess", "fast", "auto")

FAST_ENVS = {"CartPole-v1": "CartPole", "Acrobot-v1": "Acrobot", "MountainCar-v0": "MountainCar"}
"""Gymnasium id -> name of its batched class in rlcore.envs.fast."""


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """One environment: `gymnasium.make(env_id, **kwargs)`, with Gymnasium's default wrappers
    (the id's registered time limit, order enforcing, the passive env checker) and nothing that
    changes the task. Probe ids ("rlcore/Probe1-ConstantReward-v0", ...) work too.

    kwargs go to gymnasium.make, e.g. max_episode_steps=100 or render_mode="rgb_array".
    """
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a Gymnasium id string such as 'CartPole-v1', got {env_id!r}. "
                        "Vector envs build their envs from the id so that worker processes can too.")
    return gym.make(env_id, **kwargs)


def make_vector(env_id: str, num_envs: int, *, backend: str = "serial", seed: int | None = None,
                num_workers: int | None = None, **env_kwargs: Any) -> VectorEnv:
    """N copies of `env_id` behind one batched step (the VectorEnv protocol, SAME-STEP autoreset).

    env_id: a Gymnasium id; each env is `make_env(env_id, **env_kwargs)`.
    num_envs: N.
    backend: "serial", "subprocess", "fast" or "auto" (see the module docstring).
    seed: the seed of the first reset() when that call gives none (env i gets seed + i), so
        `envs = make_vector(..., seed=0); envs.reset()` is reproducible. reset(seed=s) always wins.
    num_workers: worker processes of the "subprocess" backend (default min(N, CPU count)).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    if num_workers is not None and backend != "subprocess":
        raise ValueError(f"num_workers={num_workers} applies only to backend='subprocess', not {backend!r}.")
    _check_seed(seed, "seed")
    if backend in ("fast", "auto"):
        fast_class = _fast_class(env_id, required=backend == "fast")
        if fast_class is not None:
            return _make_fast(fast_class, env_id, num_envs, seed, env_kwargs)
        backend = "serial"
    if backend == "serial":
        return SerialVectorEnv(env_id, num_envs, seed=seed, env_kwargs=env_kwargs)
    return SubprocessVectorEnv(env_id, num_envs, num_workers=num_workers, seed=seed, env_kwargs=env_kwargs)


def given_or_made(envs: Any, env_id: str, num_envs: int, backend: str) -> tuple[Any, bool]:
    """The vector env a training function should use: `envs` when the caller passed one (checked to hold
    num_envs environments), else a new `make_vector(env_id, num_envs, backend=backend)`.

    Returns (envs, owned): a training function closes only the environments it made.
    """
    if envs is None:
        return make_vector(env_id, num_envs, backend=backend), True
    for name in ("reset", "step", "num_envs", "single_observation_space", "single_action_space"):
        if not hasattr(envs, name):
            raise TypeError(f"envs must follow the rlcore vector-env protocol (rlcore.envs.VectorEnv); it has no "
                            f"{name!r}. Build one with rlcore.envs.make_vector.")
    if envs.num_envs != num_envs:
        raise ValueError(f"the envs passed hold {envs.num_envs} environments but the config says num_envs = "
                         f"{num_envs}; make them agree.")
    return envs, False


def _fast_class(env_id: str, *, required: bool) -> type | None:
    """The rlcore.envs.fast class for env_id, or None (an error if `required`)."""
    name = FAST_ENVS.get(env_id)
    if name is None:
        if required:
            raise ValueError(f"there is no fast implementation of {env_id!r} (rlcore.envs.fast has "
                             f"{sorted(FAST_ENVS)}); use backend='serial', 'subprocess' or 'auto'.")
        return None
    # Imported here, not at the top: the Gymnasium backends must work without rlcore.envs.fast.
    try:
        from rlcore.envs import fast
    except ModuleNotFoundError as exc:
        if exc.name != "rlcore.envs.fast":
            raise  # fast exists but needs something missing: that is a real error, not "unavailable"
        if required:
            raise ValueError("backend='fast' needs rlcore.envs.fast, which is not installed; "
                             "use backend='serial' or 'auto'.") from exc
        return None
    fast_class = getattr(fast, name, None)
    if fast_class is None and required:
        raise ValueError(f"rlcore.envs.fast has no {name} for {env_id!r}; use backend='serial' or 'auto'.")
    return fast_class


def _make_fast(fast_class: type, env_id: str, num_envs: int, seed: int | None, env_kwargs: dict) -> VectorEnv:
    parameters = inspect.signature(fast_class).parameters
    takes_seed = "seed" in parameters
    try:
        inspect.signature(fast_class).bind(num_envs, **env_kwargs)
    except TypeError as exc:
        raise ValueError(f"fast.{fast_class.__name__} for {env_id!r} does not accept the keyword arguments "
                         f"{sorted(env_kwargs)} ({exc}); it takes {[p for p in parameters][1:]}. Pass only "
                         "those, or use backend='serial'.") from None
    if takes_seed:
        return fast_class(num_envs, seed=seed, **env_kwargs)
    envs = fast_class(num_envs, **env_kwargs)
    return envs if seed is None else _SeedFirstReset(envs, seed)


class _SeedFirstReset:
    """A vector env whose first reset() without a seed uses `seed`: make_vector's seed rule for a
    batched env whose constructor takes no seed. Everything else passes straight through."""

    def __init__(self, envs: VectorEnv, seed: int):
        self._envs, self._seed = envs, seed

    def reset(self, *, seed: int | None = None, **kwargs: Any):
        if seed is None:
            seed = self._seed
        self._seed = None
        return self._envs.reset(seed=seed, **kwargs)

    def step(self, actions: Any):
        return self._envs.step(actions)

    def close(self) -> None:
        self._envs.close()

    def __getattr__(self, name: str) -> Any:  # spaces, num_envs, ...
        return getattr(self._envs, name)

    def __enter__(self) -> "_SeedFirstReset":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{self._envs!r} (first reset seed {self._seed})"
