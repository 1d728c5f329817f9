"""Vector environments: N copies of an environment behind one batched `reset` and `step`.

Deep RL collects experience from N environments at once, so a policy network sees a batch [N, ...]
per call instead of one observation. Every vector env in rlcore follows the `VectorEnv` protocol
below: the two Gymnasium backends here (`SerialVectorEnv`, `SubprocessVectorEnv`) and the batched
`rlcore.envs.fast` environments. Build one with `rlcore.envs.make_vector`.

    obs, info = envs.reset(seed=0)                      # obs [N, *obs_shape]
    obs, rewards, terminated, truncated, info = envs.step(actions)

SAME-STEP autoreset (the one rule to remember). When environment i's episode ends at a step,
that same step already resets it:

    obs[i]                     first observation of env i's NEXT episode
    info["final_obs"][i]       the observation the episode ended in (terminal, or where the time
                               limit cut in); rows where nothing ended hold a copy of obs[i]
    rewards[i], terminated[i], truncated[i]
                               belong to the step that ended the episode
    info["episode_return"][i]  undiscounted return of the episode that just ended (float64), NaN
                               in rows where no episode ended
    info["episode_length"][i]  its number of steps (int64), 0 in rows where no episode ended

So every (obs_t, action_t, reward_t, done_t) row of a rollout is a real transition: there is no
"reset step" to mask out. The trap is bootstrapping: on truncation the target is
r + gamma * V(info["final_obs"][i]), not r + gamma * V(obs[i]), because obs[i] already belongs to
the next episode; on termination it is r alone. (Gymnasium's own vector envs default to NEXT-STEP
autoreset, where the reset happens on the following call; rlcore does not use that mode.)

Seeding follows Gymnasium: `reset(seed=s)` resets env i with seed s + i; `reset()` without a seed
continues each env's own random stream. The episode statistics are counted by the vector env itself,
from the rewards it returns, so they are the same whatever wrappers the environments carry. The
single envs' own info dicts are not passed on: info holds exactly the three keys above.

Backends:
    SerialVectorEnv       N Gymnasium envs stepped in a loop in this process. Lowest overhead per
                          step; the right choice for cheap environments such as CartPole.
    SubprocessVectorEnv   the N envs split into contiguous slices over worker processes. Pays a
                          pipe round trip per step (0.1 to 0.4 ms, more on a busy machine), so it
                          only wins when stepping a worker's slice costs more than that (physics
                          engines, emulators) and there are free cores
                          (benchmarks/vector_envs.py measures both on CartPole).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import time
import traceback
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

__all__ = ["VectorEnv", "SerialVectorEnv", "SubprocessVectorEnv"]

StepResult = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]


@runtime_checkable
class VectorEnv(Protocol):
    """What every rlcore vector env offers (see the module docstring for the autoreset rule).

    num_envs: N, the number of environments.
    single_observation_space, single_action_space: the spaces of one environment.
    observation_space, action_space: the batched spaces (gymnasium.vector.utils.batch_space).

    reset(seed=None) -> (obs [N, *obs_shape], info dict)
        env i is reset with seed + i when a seed is given.
    step(actions) -> (obs, rewards, terminated, truncated, info)
        actions: [N] integers for a Discrete action space, [N, *act_shape] for a Box.
        obs [N, *obs_shape] (the observation space's dtype, float32 for the course's envs),
        rewards [N] float32, terminated [N] bool, truncated [N] bool,
        info["final_obs"] [N, *obs_shape], info["episode_return"] [N] float64,
        info["episode_length"] [N] int64.
    close() -> None: idempotent; a closed vector env raises on reset/step.
    Also a context manager: `with make_vector("CartPole-v1", 8) as envs: ...`.
    """

    num_envs: int
    single_observation_space: gym.Space
    single_action_space: gym.Space
    observation_space: gym.Space
    action_space: gym.Space

    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict]: ...

    def step(self, actions: Any) -> StepResult: ...

    def close(self) -> None: ...

    def __enter__(self) -> "VectorEnv": ...

    def __exit__(self, *exc: object) -> None: ...


# ---------------------------------------------------------------------------------------------
# The semantics, once: a group of envs stepped in a loop with SAME-STEP autoreset
# ---------------------------------------------------------------------------------------------

# Observation spaces whose samples are fixed-shape numeric arrays, so a batch is one array.
_ARRAY_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


class _StepArrays:
    """The arrays one step fills, for n rows: obs and final_obs [n, *obs_shape], rewards [n]
    float32, terminated and truncated [n] bool, episode_return [n] float64, episode_length [n]
    int64. Either owned arrays or views onto shared memory (`from_buffers`)."""

    FIELDS = ("obs", "final_obs", "rewards", "terminated", "truncated", "episode_return", "episode_length")

    def __init__(self, obs: np.ndarray, final_obs: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                 truncated: np.ndarray, episode_return: np.ndarray, episode_length: np.ndarray):
        self.obs, self.final_obs, self.rewards = obs, final_obs, rewards
        self.terminated, self.truncated = terminated, truncated
        self.episode_return, self.episode_length = episode_return, episode_length

    @staticmethod
    def layout(n: int, obs_space: gym.Space) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Shape and dtype of each field for n rows."""
        obs = ((n, *obs_space.shape), np.dtype(obs_space.dtype))
        return {"obs": obs, "final_obs": obs, "rewards": ((n,), np.dtype(np.float32)),
                "terminated": ((n,), np.dtype(bool)), "truncated": ((n,), np.dtype(bool)),
                "episode_return": ((n,), np.dtype(np.float64)), "episode_length": ((n,), np.dtype(np.int64))}

    @classmethod
    def empty(cls, n: int, obs_space: gym.Space) -> "_StepArrays":
        return cls(**{name: np.zeros(shape, dtype) for name, (shape, dtype) in cls.layout(n, obs_space).items()})

    @classmethod
    def from_buffers(cls, buffers: dict, n: int, obs_space: gym.Space, rows: slice) -> "_StepArrays":
        """Views of rows `rows` of arrays [n, ...] that live in the given shared buffers."""
        views = {}
        for name, (shape, dtype) in cls.layout(n, obs_space).items():
            views[name] = np.frombuffer(buffers[name], dtype=dtype, count=int(np.prod(shape))).reshape(shape)[rows]
        return cls(**views)

    def as_tuple(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)


class _EnvGroup:
    """Envs number offset .. offset + len(envs) - 1 of a vector env, stepped one after another.

    The serial backend holds one group with every env; each subprocess worker holds one group with
    its slice. Both backends therefore share this one implementation of autoreset and episode
    statistics, and the tests that pin down its semantics cover both.
    """

    def __init__(self, envs: list[gym.Env], offset: int, out: _StepArrays):
        self.envs, self.offset, self.out = envs, offset, out
        n = len(envs)
        self._return = [0.0] * n  # running undiscounted return of each env's episode
        self._length = [0] * n
        self.failed_index: int | None = None  # global index of the env that raised, if one did
        self._discrete = isinstance(envs[0].action_space, spaces.Discrete)

    def reset(self, seed: int | None) -> None:
        """Reset every env (env i with seed + i) into out.obs; final_obs mirrors obs."""
        out = self.out
        for j, env in enumerate(self.envs):
            index = self.offset + j
            try:
                obs, _ = env.reset(seed=None if seed is None else seed + index)
            except Exception as exc:
                self._note_failure(exc, index, "reset")
                raise
            out.obs[j] = obs
        out.final_obs[...] = out.obs
        out.rewards[...] = 0.0
        out.terminated[...] = out.truncated[...] = False
        out.episode_return[...] = np.nan
        out.episode_length[...] = 0
        self._return = [0.0] * len(self.envs)
        self._length = [0] * len(self.envs)

    def step(self, actions: np.ndarray) -> None:
        """Step env j with actions[j] (already validated) and fill `out`, resetting ended envs."""
        if self._discrete:
            # Python ints: some envs compare or index with the action and misbehave on a numpy
            # scalar; tolist() converts the whole row in one call.
            actions = actions.tolist()
        observations, rewards, terminated, truncated, ended = [], [], [], [], []
        # Plain lists inside the loop and one array write per field after it: a numpy item
        # assignment costs more than a list append, and this loop runs N times per step.
        for j, env in enumerate(self.envs):
            try:
                obs, reward, term, trunc, _ = env.step(actions[j])
                self._return[j] += float(reward)  # float(): keep the sum in float64
                self._length[j] += 1
                if term or trunc:
                    ended.append((j, obs, self._return[j], self._length[j]))
                    self._return[j], self._length[j] = 0.0, 0
                    # No seed: the next episode continues the env's own random stream, so the
                    # whole run is determined by the seed of the first reset.
                    obs, _ = env.reset()
            except Exception as exc:
                self._note_failure(exc, self.offset + j, "step")
                raise
            observations.append(obs)
            rewards.append(reward)
            terminated.append(term)
            truncated.append(trunc)
        out = self.out
        out.obs[...] = observations
        out.final_obs[...] = out.obs
        out.rewards[...] = rewards
        out.terminated[...] = terminated
        out.truncated[...] = truncated
        out.episode_return[...] = np.nan
        out.episode_length[...] = 0
        for j, final_obs, episode_return, episode_length in ended:
            out.final_obs[j] = final_obs
            out.episode_return[j] = episode_return
            out.episode_length[j] = episode_length

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def _note_failure(self, exc: Exception, index: int, phase: str) -> None:
        """Remember which env raised and say so in the traceback; the caller re-raises."""
        self.failed_index = index
        exc.add_note(f"(raised by env {index} of the vector env during {phase}(); "
                     f"reset the vector env before stepping it again)")


# ---------------------------------------------------------------------------------------------
# What both backends share: spaces, checks on the call order and on the actions
# ---------------------------------------------------------------------------------------------


def _check_num_envs(num_envs: Any) -> int:
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}.")
    return int(num_envs)


def _check_seed(seed: Any, what: str) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{what} must be a non-negative integer or None, got {seed!r}.")
    return int(seed)


class _GymnasiumVectorEnv:
    """Shared plumbing of the two Gymnasium backends (not a public base class)."""

    metadata = {"autoreset_mode": "same-step"}

    def _init_spaces(self, env_id: str, num_envs: int, obs_space: gym.Space, act_space: gym.Space,
                     seed: int | None) -> None:
        if not isinstance(obs_space, _ARRAY_SPACES):
            raise ValueError(
                f"{env_id} has observation space {obs_space}; rlcore vector envs batch observations "
                f"into one array and support Box, Discrete, MultiDiscrete and MultiBinary. Register an "
                f"id whose env is wrapped in gymnasium.wrappers.FlattenObservation and use that.")
        if not isinstance(act_space, _ARRAY_SPACES):
            raise ValueError(f"{env_id} has action space {act_space}; rlcore vector envs support Box, "
                             f"Discrete, MultiDiscrete and MultiBinary action spaces.")
        self.env_id = env_id
        self.num_envs = num_envs
        self.single_observation_space = obs_space
        self.single_action_space = act_space
        self.observation_space = batch_space(obs_space, num_envs)
        self.action_space = batch_space(act_space, num_envs)
        self._first_seed = _check_seed(seed, "seed")
        self._needs_reset = True

    def _seed_for_reset(self, seed: Any) -> int | None:
        """The explicit seed, else the constructor's seed on the first reset only."""
        seed = _check_seed(seed, "reset(seed=...)")
        if seed is None:
            seed, self._first_seed = self._first_seed, None
        else:
            self._first_seed = None
        return seed

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} for {self.env_id} is closed; create a new one "
                               "with make_vector(...).")

    def _check_step_allowed(self) -> None:
        self._check_open()
        if self._needs_reset:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset() (or after an "
                               "environment raised): call envs.reset(seed=...) first.")

    def _check_actions(self, actions: Any) -> np.ndarray:
        """Actions as an array [N, *act_shape] in the single action space, or a clear ValueError."""
        space, n = self.single_action_space, self.num_envs
        try:
            actions = np.asarray(actions)
        except (TypeError, RuntimeError) as exc:  # e.g. a CUDA tensor
            raise ValueError(f"actions could not be converted to a NumPy array ({exc}); pass a NumPy "
                             "array (for a torch tensor: actions.cpu().numpy()).") from exc
        expected = (n, *space.shape)
        if actions.shape != expected:
            hint = ""
            if isinstance(space, spaces.Discrete) and actions.shape == (n, 1):
                hint = " Drop the last axis: actions.squeeze(-1)."
            elif actions.shape == space.shape or actions.shape == ():
                hint = " That looks like the action of one env: pass one row per env."
            raise ValueError(f"actions must have shape {expected} (num_envs={n}, action space {space}), "
                             f"got shape {actions.shape}.{hint}")
        if isinstance(space, spaces.Box):
            if not (np.issubdtype(actions.dtype, np.floating) or np.issubdtype(actions.dtype, np.integer)):
                raise ValueError(f"Box actions must be numbers, got dtype {actions.dtype}.")
            actions = actions.astype(space.dtype, copy=False)
            finite = np.isfinite(actions).reshape(n, -1).all(axis=1)
            if not finite.all():
                i = int(np.flatnonzero(~finite)[0])
                raise ValueError(f"env {i} got a non-finite action {actions[i]}; a NaN action usually means "
                                 "the policy network's output became NaN.")
            inside = ((actions >= space.low) & (actions <= space.high)).reshape(n, -1).all(axis=1)
            if not inside.all():
                i = int(np.flatnonzero(~inside)[0])
                raise ValueError(
                    f"env {i} got action {actions[i]}, outside the action space [{space.low}, {space.high}]. "
                    "A Gaussian policy's samples are unbounded: clip them before stepping, "
                    "np.clip(actions, envs.single_action_space.low, envs.single_action_space.high), "
                    "and keep the unclipped sample for the log-probability.")
            return actions
        # Discrete, MultiDiscrete, MultiBinary: integers. Integral floats (from a float tensor)
        # are accepted, as the fast environments do.
        if not np.issubdtype(actions.dtype, np.integer):
            if np.issubdtype(actions.dtype, np.floating) and np.all(actions == np.round(actions)):
                actions = actions.astype(np.int64)
            else:
                raise ValueError(f"actions for {space} must be integers, got dtype {actions.dtype}"
                                 f"{' with fractional values' if np.issubdtype(actions.dtype, np.floating) else ''}.")
        if isinstance(space, spaces.Discrete):
            low, high = int(space.start), int(space.start + space.n - 1)
            bad = (actions < low) | (actions > high)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"env {i} got action {actions[i]}, but the action space is {space}: "
                                 f"actions must be integers in [{low}, {high}].")
            return actions
        for i in range(n):
            if not space.contains(actions[i].astype(space.dtype)):
                raise ValueError(f"env {i} got action {actions[i]}, which is not in the action space {space}.")
        return actions.astype(space.dtype)

    @staticmethod
    def _info(out: _StepArrays) -> dict:
        return {"final_obs": out.final_obs, "episode_return": out.episode_return,
                "episode_length": out.episode_length}

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Best effort only: during interpreter shutdown module globals may already be gone, and an
        # exception in __del__ could only be printed, never handled.
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id!r}, num_envs={self.num_envs})"


# ---------------------------------------------------------------------------------------------
# SerialVectorEnv: one process, one loop
# ---------------------------------------------------------------------------------------------


class SerialVectorEnv(_GymnasiumVectorEnv):
    """N Gymnasium environments stepped one after another in this process.

    Args:
        env_id: a Gymnasium id, made with `rlcore.envs.make_env(env_id, **env_kwargs)` N times.
        num_envs: N.
        seed: the seed of the first `reset()` when that call gives none (env i gets seed + i);
            `reset(seed=s)` always wins. None: fresh entropy.
        env_kwargs: keyword arguments for each environment (e.g. max_episode_steps).

    The cheapest backend for light environments: per step it costs one Python call per env and no
    inter-process traffic. See the module docstring for what `step` returns.
    """

    def __init__(self, env_id: str, num_envs: int, *, seed: int | None = None, env_kwargs: dict | None = None):
        from rlcore.envs.make import make_env  # make.py imports this module

        self._closed = True  # until construction has succeeded, so __del__ has nothing to do
        num_envs = _check_num_envs(num_envs)
        self.env_kwargs = dict(env_kwargs or {})
        envs = [make_env(env_id, **self.env_kwargs) for _ in range(num_envs)]
        self._init_spaces(env_id, num_envs, envs[0].observation_space, envs[0].action_space, seed)
        self._out = _StepArrays.empty(num_envs, self.single_observation_space)
        self._group = _EnvGroup(envs, offset=0, out=self._out)
        self._closed = False

    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict]:
        """Reset every env (env i with seed + i). Returns obs [N, *obs_shape] and an empty info."""
        self._check_open()
        seed = self._seed_for_reset(seed)
        self._needs_reset = True
        self._group.reset(seed)  # if an env raises, the vector env stays "needs reset"
        self._needs_reset = False
        return self._out.obs.copy(), {}

    def step(self, actions: Any) -> StepResult:
        """One step of every env with SAME-STEP autoreset; see the module docstring."""
        self._check_step_allowed()
        actions = self._check_actions(actions)
        # If an env raises (or Ctrl-C arrives) half-way through the loop, some envs have stepped and
        # some have not: the batch is inconsistent and only a reset makes it whole again.
        self._needs_reset = True
        self._group.step(actions)
        self._needs_reset = False
        out = self._out
        # Copies: the caller stores these in a rollout buffer, and the next step reuses `out`.
        info = {name: value.copy() for name, value in self._info(out).items()}
        return out.obs.copy(), out.rewards.copy(), out.terminated.copy(), out.truncated.copy(), info

    def close(self) -> None:
        """Close every environment. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._group.close()


# ---------------------------------------------------------------------------------------------
# SubprocessVectorEnv: worker processes, each stepping a contiguous slice of the envs
# ---------------------------------------------------------------------------------------------


def _worker_main(conn: multiprocessing.connection.Connection, env_id: str, env_kwargs: dict, start: int,
                 stop: int, num_envs: int, buffers: dict | None) -> None:
    """Body of a worker process: make envs start..stop-1, then serve commands until "close".

    Commands: ("reset", seed), ("step", actions [stop - start, ...]), ("close", None).
    Replies: ("ok", payload) where payload is None with shared memory (the results are already in
    the shared arrays) or the tuple of result arrays otherwise; ("error", env_index, traceback text).
    """
    # Ctrl-C in a terminal sends SIGINT to the whole process group. The main process turns it into
    # an orderly close(); a worker that died of it first would turn that into a broken pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from rlcore.envs.make import make_env

    group = None
    try:
        index = start
        envs = []
        try:
            for index in range(start, stop):
                envs.append(make_env(env_id, **env_kwargs))
        except Exception:
            conn.send(("error", index, traceback.format_exc()))
            return
        obs_space = envs[0].observation_space
        if buffers is None:
            out = _StepArrays.empty(stop - start, obs_space)
        else:
            out = _StepArrays.from_buffers(buffers, num_envs, obs_space, slice(start, stop))
        group = _EnvGroup(envs, offset=start, out=out)
        conn.send(("ok", None))
        while True:
            try:
                command, data = conn.recv()
            except EOFError:  # the main process is gone
                return
            if command == "close":
                return
            try:
                if command == "reset":
                    group.reset(data)
                else:
                    group.step(data)
            except Exception:
                conn.send(("error", group.failed_index, traceback.format_exc()))
                continue
            conn.send(("ok", None if buffers is not None else out.as_tuple()))
    finally:
        if group is not None:
            try:
                group.close()
            except Exception:
                pass  # closing after a failure: the original error has already been reported
        conn.close()


class SubprocessVectorEnv(_GymnasiumVectorEnv):
    """N Gymnasium environments in worker processes, each worker stepping a contiguous slice.

    Args:
        env_id, num_envs, seed, env_kwargs: as for `SerialVectorEnv`. The workers build their
            envs themselves from env_id and env_kwargs (both must pickle): this works with the
            "spawn" start method, where a lambda or a closure could not be sent.
        num_workers: processes, 1 <= num_workers <= N; worker w holds envs
            [w * N // W, (w + 1) * N // W). Default: min(N, number of CPUs).
        context: multiprocessing start method. "spawn" (default) starts a fresh interpreter, safe
            with threads (torch) and on every OS; "fork" starts faster on Linux.
        shared_memory: results travel through shared arrays (True) or are pickled through the pipe
            (False). benchmarks/vector_envs.py measures both.

    Each step sends every worker its actions, then waits for all of them. If an env raises in a
    worker, step/reset raise RuntimeError naming the env index with the worker's traceback, and the
    vector env closes itself (its envs are in an unknown state). Workers ignore Ctrl-C; the main
    process catches it, shuts the workers down and re-raises. With "spawn", a script that creates
    this env must do so under `if __name__ == "__main__":` (Python re-imports the script in each
    worker); notebooks need nothing.
    """

    def __init__(self, env_id: str, num_envs: int, *, num_workers: int | None = None, seed: int | None = None,
                 env_kwargs: dict | None = None, context: str = "spawn", shared_memory: bool = True,
                 close_timeout: float = 5.0):
        from rlcore.envs.make import make_env

        self._closed = True  # until construction has succeeded
        self._processes: list = []
        self._conns: list = []
        num_envs = _check_num_envs(num_envs)
        if num_workers is None:
            num_workers = min(num_envs, os.cpu_count() or 1)
        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) \
                or not 1 <= num_workers <= num_envs:
            raise ValueError(f"num_workers must be an integer in [1, num_envs={num_envs}], got {num_workers!r}.")
        self.num_workers = int(num_workers)
        self.env_kwargs = dict(env_kwargs or {})
        self.close_timeout = close_timeout
        # One env here, only to learn the spaces (and to fail early, in this process, with a
        # plain traceback if the id or the kwargs are wrong).
        probe = make_env(env_id, **self.env_kwargs)
        obs_space, act_space = probe.observation_space, probe.action_space
        probe.close()
        self._init_spaces(env_id, num_envs, obs_space, act_space, seed)

        bounds = [w * num_envs // self.num_workers for w in range(self.num_workers + 1)]
        self._slices = [slice(bounds[w], bounds[w + 1]) for w in range(self.num_workers)]
        ctx = multiprocessing.get_context(context)
        if shared_memory:
            layout = _StepArrays.layout(num_envs, obs_space)
            # RawArray: no lock, since each worker writes only its own rows and the main process
            # reads only after every worker has replied.
            buffers = {name: ctx.RawArray("b", max(1, int(np.prod(shape)) * dtype.itemsize))
                       for name, (shape, dtype) in layout.items()}
            self._out = _StepArrays.from_buffers(buffers, num_envs, obs_space, slice(None))
        else:
            buffers = None
            self._out = _StepArrays.empty(num_envs, obs_space)
        self._shared = shared_memory

        self._closed = False  # from here on close() has processes to clean up
        try:
            for w, rows in enumerate(self._slices):
                parent_conn, child_conn = ctx.Pipe()
                process = ctx.Process(
                    target=_worker_main, name=f"rlcore-vector-worker-{w}", daemon=True,
                    args=(child_conn, env_id, self.env_kwargs, rows.start, rows.stop, num_envs, buffers))
                process.start()
                # Our copy of the child's end must go, or recv() would wait forever on a dead worker
                # instead of raising EOFError.
                child_conn.close()
                self._processes.append(process)
                self._conns.append(parent_conn)
            self._gather("start")
        except BaseException:
            self.close()
            raise

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers (for monitoring; empty until started)."""
        return [p.pid for p in self._processes]

    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict]:
        """Reset every env (env i with seed + i). Returns obs [N, *obs_shape] and an empty info."""
        self._check_open()
        seed = self._seed_for_reset(seed)
        self._needs_reset = True
        self._call("reset", [seed] * self.num_workers)
        self._needs_reset = False
        return self._out.obs.copy(), {}

    def step(self, actions: Any) -> StepResult:
        """One step of every env with SAME-STEP autoreset; see the module docstring."""
        self._check_step_allowed()
        actions = self._check_actions(actions)
        self._call("step", [actions[rows] for rows in self._slices])
        out = self._out
        info = {name: value.copy() for name, value in self._info(out).items()}
        return out.obs.copy(), out.rewards.copy(), out.terminated.copy(), out.truncated.copy(), info

    def close(self) -> None:
        """Ask the workers to close their envs and exit; terminate any that do not within
        close_timeout seconds. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (OSError, ValueError):  # the worker is already gone
                pass
        deadline = time.monotonic() + self.close_timeout
        for process in self._processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join()
        for conn in self._conns:
            conn.close()

    # -- internals ------------------------------------------------------------------------------

    def _call(self, command: str, per_worker: list) -> None:
        """Send one command to every worker, then wait for every reply (fills self._out)."""
        try:
            for w, (conn, data) in enumerate(zip(self._conns, per_worker)):
                try:
                    conn.send((command, data))
                except OSError:  # BrokenPipeError: the worker is gone
                    raise RuntimeError(self._died(w, command)) from None
            self._gather(command)
        except BaseException:
            # An env error, a dead worker or Ctrl-C: the workers are in an unknown state (and
            # replies may still be in flight), so none of them can be trusted again.
            self.close()
            raise

    def _died(self, w: int, command: str) -> str:
        process, rows = self._processes[w], self._slices[w]
        process.join(timeout=1.0)
        return (f"worker {w} (envs {rows.start}..{rows.stop - 1}, pid {process.pid}) exited unexpectedly "
                f"with exit code {process.exitcode} during {command}; it may have been killed (out of "
                "memory?) or crashed in native code. The vector env has been closed.")

    def _gather(self, command: str) -> None:
        """Wait for one reply per worker; raise a RuntimeError for the first failure."""
        failures = []
        for w, conn in enumerate(self._conns):
            rows = self._slices[w]
            try:
                reply = conn.recv()
            except (EOFError, OSError):
                failures.append(self._died(w, command))
                continue
            if reply[0] == "error":
                _, index, text = reply
                failures.append(f"env {index} (worker {w}, envs {rows.start}..{rows.stop - 1}) of "
                                f"{self.env_id} raised an exception during {command}. The vector env has been "
                                f"closed. Worker traceback:\n{text}")
            elif not self._shared and reply[1] is not None:
                for name, value in zip(_StepArrays.FIELDS, reply[1]):
                    getattr(self._out, name)[rows] = value
        if failures:
            raise RuntimeError(failures[0])
