"""Vector-env semantics (rlcore.envs.vector): each backend is stepped in lockstep with N plain
Gymnasium environments driven by hand, with the same seeds and actions, and must agree exactly;
plus the call-order and action checks, worker failures, and shutdown."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import gymnasium as gym
import numpy as np
import pytest

from rlcore.envs import SerialVectorEnv, SubprocessVectorEnv, VectorEnv, make_env, make_vector

COUNTER = "rlcore/Counter-v0"

# Starting a "spawn" worker costs ~0.5 s (a fresh interpreter importing numpy and gymnasium), so
# the lockstep tests use the default "spawn" and the rest of the subprocess tests use "fork" where
# the platform has it; the semantics do not depend on the start method.
QUICK_START = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"

# Backend configurations under test. Five envs over two workers gives uneven slices (2 + 3).
BACKENDS = {
    "serial": lambda env_id, n, **kw: SerialVectorEnv(env_id, n, env_kwargs=kw),
    "subprocess-spawn-2-workers": lambda env_id, n, **kw: SubprocessVectorEnv(
        env_id, n, num_workers=2, env_kwargs=kw),
    "subprocess-1-worker-pipes": lambda env_id, n, **kw: SubprocessVectorEnv(
        env_id, n, num_workers=1, shared_memory=False, context=QUICK_START, env_kwargs=kw),
    "subprocess-2-workers": lambda env_id, n, **kw: SubprocessVectorEnv(
        env_id, n, num_workers=2, context=QUICK_START, env_kwargs=kw),
}
LOCKSTEP = ["serial", "subprocess-spawn-2-workers", "subprocess-1-worker-pipes"]
OTHERS = ["serial", "subprocess-2-workers", "subprocess-1-worker-pipes"]


def hand_stepped(env_id: str, n: int, seed: int, actions: np.ndarray, **kwargs) -> dict[str, np.ndarray]:
    """What a vector env must return, computed the obvious way: N separate envs, env i reset with
    seed + i, an ended episode reset at once (SAME-STEP), statistics counted by hand.
    actions [T, N] -> arrays [T, N, ...] for obs, rewards, terminated, truncated, final_obs,
    episode_return, episode_length, plus first_obs [N, ...]."""
    envs = [gym.make(env_id, **kwargs) for _ in range(n)]
    current = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    first_obs = np.stack(current)
    running_return, running_length = [0.0] * n, [0] * n
    rows = {key: [] for key in ("obs", "rewards", "terminated", "truncated", "final_obs",
                                "episode_return", "episode_length")}
    for step_actions in actions:
        row = {key: [] for key in rows}
        for i, env in enumerate(envs):
            obs, reward, terminated, truncated, _ = env.step(step_actions[i])
            running_return[i] += reward
            running_length[i] += 1
            row["final_obs"].append(obs)
            if terminated or truncated:
                row["episode_return"].append(running_return[i])
                row["episode_length"].append(running_length[i])
                running_return[i], running_length[i] = 0.0, 0
                obs, _ = env.reset()
            else:
                row["episode_return"].append(np.nan)
                row["episode_length"].append(0)
            row["obs"].append(obs)
            row["rewards"].append(reward)
            row["terminated"].append(terminated)
            row["truncated"].append(truncated)
        for key in rows:
            rows[key].append(np.array(row[key]))
    for env in envs:
        env.close()
    return {"first_obs": first_obs, **{key: np.stack(value) for key, value in rows.items()}}


def vector_stepped(envs: VectorEnv, seed: int, actions: np.ndarray) -> dict[str, np.ndarray]:
    """The same rollout through a vector env, checking dtypes and shapes on the way."""
    first_obs, info = envs.reset(seed=seed)
    assert isinstance(info, dict)
    rows = {key: [] for key in ("obs", "rewards", "terminated", "truncated", "final_obs",
                                "episode_return", "episode_length")}
    n = envs.num_envs
    for step_actions in actions:
        obs, rewards, terminated, truncated, info = envs.step(step_actions)
        assert obs.shape == (n, *envs.single_observation_space.shape)
        assert obs.dtype == envs.single_observation_space.dtype
        assert rewards.dtype == np.float32 and rewards.shape == (n,)
        assert terminated.dtype == bool and truncated.dtype == bool
        assert info["episode_return"].dtype == np.float64 and info["episode_length"].dtype == np.int64
        for key, value in (("obs", obs), ("rewards", rewards), ("terminated", terminated),
                           ("truncated", truncated)):
            rows[key].append(value)
        for key in ("final_obs", "episode_return", "episode_length"):
            rows[key].append(info[key])
    return {"first_obs": first_obs, **{key: np.stack(value) for key, value in rows.items()}}


def assert_same(expected: dict, got: dict) -> None:
    for key, value in expected.items():
        if key == "rewards":  # the vector env returns float32 rewards
            value = value.astype(np.float32)
        np.testing.assert_array_equal(got[key], value, err_msg=f"{key} differs")


@pytest.mark.parametrize("backend", LOCKSTEP)
@pytest.mark.parametrize("env_id, kwargs, steps", [
    ("CartPole-v1", {}, 120),
    ("CartPole-v1", {"max_episode_steps": 12}, 60),  # TimeLimit truncations mixed with terminations
    (COUNTER, {"max_episode_steps": 4}, 40),  # lengths 2..6 cut at 4: both flags, often
], ids=["cartpole", "cartpole-timelimit", "counter-timelimit"])
def test_lockstep_with_hand_stepped_envs(backend, env_id, kwargs, steps):
    n, seed = 5, 123
    actions = np.random.default_rng(0).integers(0, 2, size=(steps, n))
    expected = hand_stepped(env_id, n, seed, actions, **kwargs)
    with BACKENDS[backend](env_id, n, **kwargs) as envs:
        got = vector_stepped(envs, seed, actions)
    assert_same(expected, got)
    if kwargs:  # the rollout really exercised both ways an episode ends
        assert expected["terminated"].any() and expected["truncated"].any()
    else:
        assert expected["terminated"].any()


@pytest.mark.parametrize("backend", OTHERS)
def test_same_step_autoreset_on_counter(backend):
    """The rule itself, with numbers: the counter's observation is [t, last action, length]."""
    n = 4
    rng = np.random.default_rng(1)
    with BACKENDS[backend](COUNTER, n, max_episode_steps=4) as envs:
        obs, _ = envs.reset(seed=7)
        np.testing.assert_array_equal(obs[:, :2], [[0, -1]] * n)
        previous_t = obs[:, 0].copy()
        for _ in range(30):
            actions = rng.integers(0, 2, size=n)
            obs, rewards, terminated, truncated, info = envs.step(actions)
            ended = terminated | truncated
            t_after = previous_t + 1
            np.testing.assert_array_equal(rewards, t_after)  # reward after step t is t
            np.testing.assert_array_equal(info["final_obs"][:, 0], t_after)
            np.testing.assert_array_equal(info["final_obs"][:, 1], actions)  # each env got its action
            # Ended rows: obs is already the next episode's first observation.
            np.testing.assert_array_equal(obs[ended, 0], 0)
            np.testing.assert_array_equal(obs[ended, 1], -1)
            np.testing.assert_array_equal(info["episode_length"][ended], t_after[ended])
            np.testing.assert_array_equal(info["episode_return"][ended], t_after[ended] * (t_after[ended] + 1) / 2)
            # Truncation comes from the TimeLimit at 4 steps; termination from the drawn length.
            np.testing.assert_array_equal(truncated, t_after == 4)
            np.testing.assert_array_equal(terminated, t_after == info["final_obs"][:, 2])
            # Other rows: final_obs mirrors obs, no statistics.
            np.testing.assert_array_equal(info["final_obs"][~ended], obs[~ended])
            assert np.isnan(info["episode_return"][~ended]).all()
            np.testing.assert_array_equal(info["episode_length"][~ended], 0)
            previous_t = obs[:, 0].copy()


def test_probe_env_lockstep_and_float_rewards():
    """A probe with a one-step episode: every step ends an episode and resets at once."""
    n = 3
    actions = np.random.default_rng(2).integers(0, 2, size=(10, n))
    expected = hand_stepped("rlcore/Probe5-ObsAndActionDependentReward-v0", n, 5, actions)
    with SerialVectorEnv("rlcore/Probe5-ObsAndActionDependentReward-v0", n) as envs:
        got = vector_stepped(envs, 5, actions)
    assert_same(expected, got)
    assert got["terminated"].all()
    np.testing.assert_array_equal(got["episode_return"], got["rewards"])


def test_discrete_observation_space():
    """FrozenLake's observation is one integer: the batch is obs [N] int64."""
    n = 3
    actions = np.random.default_rng(3).integers(0, 4, size=(40, n))
    expected = hand_stepped("FrozenLake-v1", n, 0, actions)
    with SerialVectorEnv("FrozenLake-v1", n) as envs:
        got = vector_stepped(envs, 0, actions)
    assert got["obs"].shape == (40, n)
    assert_same(expected, got)


def test_seeding_rules():
    with make_vector("CartPole-v1", 3, seed=11) as envs:
        first, _ = envs.reset()  # the constructor's seed applies to the first reset
        again, _ = envs.reset()  # later resets without a seed continue the streams
        explicit, _ = envs.reset(seed=11)
    for i in range(3):
        np.testing.assert_array_equal(first[i], gym.make("CartPole-v1").reset(seed=11 + i)[0])
    assert not np.array_equal(first, again)
    np.testing.assert_array_equal(first, explicit)
    with pytest.raises(ValueError, match="non-negative integer"):
        make_vector("CartPole-v1", 2, seed=-1)


def test_returned_arrays_are_copies():
    with make_vector(COUNTER, 2, seed=0) as envs:
        obs0, _ = envs.reset()
        obs1, _, _, _, info1 = envs.step(np.zeros(2, dtype=int))
        obs1_saved, final_saved = obs1.copy(), info1["final_obs"].copy()
        envs.step(np.ones(2, dtype=int))
        np.testing.assert_array_equal(obs1, obs1_saved)  # the next step did not overwrite them
        np.testing.assert_array_equal(info1["final_obs"], final_saved)


@pytest.mark.parametrize("backend", ["serial", "subprocess-2-workers"])
def test_protocol_and_spaces(backend):
    with BACKENDS[backend]("CartPole-v1", 4) as envs:
        assert isinstance(envs, VectorEnv)
        assert envs.num_envs == 4
        assert envs.single_action_space == gym.spaces.Discrete(2)
        assert envs.observation_space.shape == (4, 4)
        assert envs.action_space == gym.spaces.MultiDiscrete([2, 2, 2, 2])


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", OTHERS)
def test_call_order_errors(backend):
    envs = BACKENDS[backend]("CartPole-v1", 3)
    with pytest.raises(RuntimeError, match=r"before reset\(\)"):
        envs.step(np.zeros(3, dtype=int))
    envs.reset(seed=0)
    envs.step(np.zeros(3, dtype=int))
    envs.close()
    envs.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        envs.step(np.zeros(3, dtype=int))
    with pytest.raises(RuntimeError, match="closed"):
        envs.reset(seed=0)


@pytest.mark.parametrize("actions, message", [
    (np.zeros((3, 1), dtype=int), r"shape \(3,\).*squeeze"),
    (np.zeros(4, dtype=int), r"shape \(3,\)"),
    (np.int64(1), r"one env"),
    (np.array([0, 2, 1]), r"env 1 got action 2.*\[0, 1\]"),
    (np.array([0, 1, -1]), r"env 2 got action -1"),
    (np.array([0.0, 0.5, 1.0]), r"integers.*fractional"),
    (np.array(["a", "b", "c"]), r"integers"),
])
def test_discrete_action_errors(actions, message):
    with make_vector("CartPole-v1", 3, seed=0) as envs:
        envs.reset()
        with pytest.raises(ValueError, match=message):
            envs.step(actions)
        envs.step(np.array([0.0, 1.0, 1.0]))  # integral floats are accepted, as by the fast envs
        envs.step([1, 0, 1])  # and lists


def test_box_action_checks():
    """Pendulum: actions [N, 1] in [-2, 2]."""
    with make_vector("Pendulum-v1", 2, seed=0) as envs:
        envs.reset()
        with pytest.raises(ValueError, match=r"shape \(2, 1\)"):
            envs.step(np.zeros(2))
        with pytest.raises(ValueError, match=r"env 1 got action .*outside.*clip"):
            envs.step(np.array([[0.0], [2.5]]))
        with pytest.raises(ValueError, match="env 0 got a non-finite action"):
            envs.step(np.array([[np.nan], [0.0]]))
        obs, rewards, *_ = envs.step(np.array([[-2.0], [2.0]]))
        assert obs.shape == (2, 3) and rewards.shape == (2,)


def test_make_vector_argument_errors():
    with pytest.raises(ValueError, match="backend must be one of"):
        make_vector("CartPole-v1", 2, backend="threads")
    with pytest.raises(ValueError, match="num_workers=2 applies only to backend='subprocess'"):
        make_vector("CartPole-v1", 2, num_workers=2)
    with pytest.raises(ValueError, match="no fast implementation"):
        make_vector(COUNTER, 2, backend="fast")
    with pytest.raises(ValueError, match="num_envs must be a positive integer"):
        make_vector("CartPole-v1", 0)
    with pytest.raises(ValueError, match=r"num_workers must be an integer in \[1, num_envs=2\]"):
        make_vector("CartPole-v1", 2, backend="subprocess", num_workers=3)
    with pytest.raises(TypeError, match="Gymnasium id string"):
        make_env(lambda: gym.make("CartPole-v1"))
    assert isinstance(make_vector(COUNTER, 2, backend="auto"), SerialVectorEnv)


def test_auto_backend_picks_fast_cartpole():
    fast = pytest.importorskip("rlcore.envs.fast")
    with make_vector("CartPole-v1", 4, backend="auto", seed=3) as envs, \
            make_vector("CartPole-v1", 4, seed=3) as serial:
        assert not isinstance(envs, SerialVectorEnv) and isinstance(envs, VectorEnv)
        assert "CartPole" in repr(envs) and fast.CartPole is not None
        np.testing.assert_array_equal(envs.reset()[0], serial.reset()[0])


def test_env_error_in_serial_backend_names_the_env():
    with make_vector(COUNTER, 4, seed=0, raise_on_action=1) as envs:
        envs.reset()
        with pytest.raises(RuntimeError, match="fail on action 1") as caught:
            envs.step(np.array([0, 0, 1, 0]))
        assert any("env 2" in note for note in caught.value.__notes__)
        with pytest.raises(RuntimeError, match="before reset"):  # half a step happened: reset first
            envs.step(np.zeros(4, dtype=int))
        envs.reset()
        envs.step(np.zeros(4, dtype=int))


def test_env_error_in_worker_names_the_env_and_closes():
    envs = SubprocessVectorEnv(COUNTER, 5, num_workers=2, seed=0, env_kwargs={"raise_on_action": 1})
    envs.reset()
    pids = envs.worker_pids
    with pytest.raises(RuntimeError) as caught:
        envs.step(np.array([0, 0, 0, 1, 0]))  # env 3 lives in worker 1 (envs 2..4)
    message = str(caught.value)
    assert "env 3 (worker 1, envs 2..4)" in message
    assert "Traceback" in message and "fail on action 1" in message  # the worker's traceback
    assert_processes_gone(pids)
    with pytest.raises(RuntimeError, match="closed"):
        envs.step(np.zeros(5, dtype=int))


def test_env_error_while_making_envs_is_reported():
    with pytest.raises(gym.error.Error):  # an unknown id fails in this process, before any worker
        SubprocessVectorEnv("NoSuchEnv-v0", 2)


# ---------------------------------------------------------------------------------------------
# Worker processes: shutdown, crashes, Ctrl-C
# ---------------------------------------------------------------------------------------------


def assert_processes_gone(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # reaped by join(): the pid no longer exists
            os.kill(pid, 0)


def test_close_stops_workers():
    envs = SubprocessVectorEnv(COUNTER, 4, num_workers=2, context=QUICK_START)
    pids = envs.worker_pids
    assert len(pids) == 2
    envs.reset(seed=0)
    envs.close()
    assert_processes_gone(pids)
    envs.close()


def test_dead_worker_is_reported():
    envs = SubprocessVectorEnv(COUNTER, 4, num_workers=2, context=QUICK_START)
    envs.reset(seed=0)
    os.kill(envs.worker_pids[1], signal.SIGKILL)
    with pytest.raises(RuntimeError, match=r"worker 1 \(envs 2..3, pid \d+\) exited unexpectedly"):
        envs.step(np.zeros(4, dtype=int))
    with pytest.raises(RuntimeError, match="closed"):
        envs.reset()


def test_ctrl_c_shuts_workers_down():
    """Workers ignore SIGINT (the terminal sends it to them too); the main process closes them."""
    envs = SubprocessVectorEnv(COUNTER, 2, num_workers=2, env_kwargs={"step_seconds": 2.0}, close_timeout=0.5,
                               context=QUICK_START)
    envs.reset(seed=0)
    pids = envs.worker_pids
    os.kill(pids[0], signal.SIGINT)  # ignored by the worker
    timer = threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        envs.step(np.zeros(2, dtype=int))  # blocks ~2 s in the workers; interrupted after 0.5 s
    timer.join()
    assert time.monotonic() - start < 1.9  # close() terminated the sleeping workers
    assert_processes_gone(pids)
