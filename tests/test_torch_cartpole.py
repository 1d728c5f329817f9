"""rlcore.envs.torch_cartpole: the on-device CartPole against Gymnasium's CartPole-v1 and rlcore's NumPy one.

- float64 on CPU with Gymnasium's initial states is identical to Gymnasium in lockstep (observations,
  rewards, flags, final observations, episode statistics), over random and balancing actions, with
  terminations and 500-step truncations;
- float32 (the fast setting) stays within a stated tolerance: one step from the same state differs by
  at most 1e-6 per state variable (measured 3e-7), and over 200 random-action steps of 1,000 envs the
  flags agree at every step (measured: always; bar 99.9%) and observations within 1e-2 (measured 1e-3);
- the default torch-generator initial states: seeded, reproducible, in Gymnasium's range;
- SAME-STEP autoreset semantics of `cartpole_step`, and clear errors on bad input.
CUDA tests are marked `gpu`.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlcore.envs import VectorEnv
from rlcore.envs.fast import CartPole
from rlcore.envs.torch_cartpole import TorchCartPole, cartpole_physics, cartpole_step, make_on_device
from tests.test_fast_cartpole import balancing_action, gymnasium_lockstep

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


class NumpyView:
    """A TorchCartPole on CPU seen through NumPy arrays, for the shared lockstep helper."""

    def __init__(self, envs: TorchCartPole):
        self.envs, self.num_envs = envs, envs.num_envs

    def reset(self, **kwargs):
        obs, info = self.envs.reset(**kwargs)
        return obs.numpy(), info

    def step(self, actions):
        obs, rewards, terminated, truncated, info = self.envs.step(torch.as_tensor(actions))
        return obs.numpy(), rewards.numpy(), terminated.numpy(), truncated.numpy(), {k: v.numpy() for k, v in info.items()}


def exact(n: int) -> TorchCartPole:
    return TorchCartPole(n, dtype=torch.float64, initial_states="gymnasium")


# ---------------------------------------------------------------------------------------------
# Exactness
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 12345])
def test_float64_lockstep_with_gymnasium(seed):
    n = 6
    counts = gymnasium_lockstep(NumpyView(exact(n)), n, seed, steps=1300, action_seed=seed + 1)
    assert counts["terminated"] > 100 and counts["truncated"] >= 3


def test_float64_same_as_rlcore_numpy_cartpole_with_balancing_policy():
    n, steps = 16, 1200
    torch_env, numpy_env = exact(n), CartPole(n)
    obs_t, _ = torch_env.reset(seed=4)
    obs_n, _ = numpy_env.reset(seed=4)
    truncations = 0
    for _ in range(steps):
        actions = balancing_action(obs_n)
        out_t, out_n = torch_env.step(torch.as_tensor(actions)), numpy_env.step(actions)
        for a, b in zip(out_t[:4], out_n[:4]):
            np.testing.assert_array_equal(a.numpy(), b)
        for key in ("final_obs", "episode_return", "episode_length"):
            np.testing.assert_array_equal(out_t[4][key].numpy(), out_n[4][key])
        obs_n, truncations = out_n[0], truncations + int(out_n[3].sum())
    assert truncations >= 2 * n


def test_float32_one_step_within_1e6_of_float64():
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([2.4, 3.0, 0.21, 3.5], dtype=torch.float64)
    state = (torch.rand(50_000, 4, generator=g, dtype=torch.float64) * 2 - 1) * scale
    actions = torch.randint(0, 2, (50_000,), generator=g)
    diff = (cartpole_physics(state.float(), actions).double() - cartpole_physics(state, actions)).abs()
    assert diff.max() <= 1e-6


def test_float32_trajectories_stay_close_to_float64():
    n = 1000
    e32, e64 = TorchCartPole(n, initial_states="gymnasium"), exact(n)
    e32.reset(seed=0), e64.reset(seed=0)
    rng = np.random.default_rng(1)
    agree, worst = 0, 0.0
    for _ in range(200):
        actions = torch.as_tensor(rng.integers(0, 2, n))
        r32, r64 = e32.step(actions), e64.step(actions)
        assert r32[0].dtype == torch.float32 and r64[0].dtype == torch.float32
        agree += int(((r32[2] == r64[2]) & (r32[3] == r64[3])).sum())
        worst = max(worst, float((r32[4]["final_obs"] - r64[4]["final_obs"]).abs().max()))
    assert agree >= 0.999 * 200 * n
    assert worst <= 1e-2


# ---------------------------------------------------------------------------------------------
# Initial states from the device's generator
# ---------------------------------------------------------------------------------------------


def test_torch_initial_states_are_seeded_and_in_range():
    envs = TorchCartPole(512)
    first, _ = envs.reset(seed=3)
    again, _ = envs.reset(seed=3)
    other, _ = envs.reset(seed=4)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)
    assert first.abs().max() <= 0.05 and first.std() > 0.02
    assert len({tuple(row) for row in first.tolist()}) == 512  # every env its own start


def test_constructor_seed_seeds_the_first_reset_only():
    a, b = TorchCartPole(4, seed=11), TorchCartPole(4)
    torch.testing.assert_close(a.reset()[0], b.reset(seed=11)[0], rtol=0, atol=0)
    assert not torch.equal(a.reset()[0], b.reset(seed=11)[0])


def test_episode_statistics_and_autoreset_with_torch_initial_states():
    n = 64
    envs = TorchCartPole(n)
    obs, _ = envs.reset(seed=0)
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(n, dtype=torch.int64)
    ended = 0
    for _ in range(300):
        obs_before = obs
        obs, rewards, terminated, truncated, info = envs.step(torch.randint(0, 2, (n,), generator=g))
        counts += 1
        done = terminated | truncated
        assert torch.equal(rewards, torch.ones(n))
        assert torch.equal(info["episode_length"], torch.where(done, counts, 0))
        assert torch.equal(torch.isnan(info["episode_return"]), ~done)
        assert torch.equal(info["episode_return"][done], counts[done].double())
        assert torch.equal(info["final_obs"][~done], obs[~done])  # rows that go on: a copy of obs
        assert (obs[done].abs() <= 0.05).all()  # the new episodes' first observations
        assert not torch.equal(obs_before, obs)
        counts[done] = 0
        ended += int(done.sum())
    assert ended > 500


# ---------------------------------------------------------------------------------------------
# The step function's SAME-STEP autoreset
# ---------------------------------------------------------------------------------------------


def test_cartpole_step_resets_only_the_envs_that_ended():
    state = torch.tensor([[0.0, 0.0, 0.0, 0.0],      # goes on
                          [2.39, 1.0, 0.0, 0.0],     # leaves the track: terminated
                          [0.0, 0.0, 0.0, 0.0],      # at the time limit: truncated
                          [0.0, 0.0, 0.209, 2.0]],   # falls at the time limit: both flags
                         dtype=torch.float64)
    lengths = torch.tensor([3, 10, 499, 499])
    reset_states = torch.full((4, 4), 0.01, dtype=torch.float64)
    nxt, nxt_len, rewards, terminated, truncated, final = cartpole_step(state, lengths, torch.tensor([1, 1, 0, 1]),
                                                                         reset_states, 500)
    assert terminated.tolist() == [False, True, False, True]
    assert truncated.tolist() == [False, False, True, True]
    assert nxt_len.tolist() == [4, 0, 0, 0]
    torch.testing.assert_close(nxt[1:], reset_states[1:], rtol=0, atol=0)
    torch.testing.assert_close(nxt[0], final[0], rtol=0, atol=0)
    assert final[1, 0] > 2.4 and not torch.equal(final[2], reset_states[2])
    assert rewards.dtype == torch.float32 and torch.equal(rewards, torch.ones(4))


def test_euler_updates_positions_from_the_old_velocities():
    state = torch.tensor([[0.1, 0.5, 0.05, -0.3]], dtype=torch.float64)
    nxt = cartpole_physics(state, torch.tensor([1]))
    assert nxt[0, 0] == 0.1 + 0.02 * 0.5 and nxt[0, 2] == 0.05 + 0.02 * -0.3


# ---------------------------------------------------------------------------------------------
# Protocol and errors
# ---------------------------------------------------------------------------------------------


def test_spaces_and_protocol():
    envs, single = TorchCartPole(3), gym.make("CartPole-v1")
    assert isinstance(envs, VectorEnv)
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.observation_space.shape == (3, 4) and envs.action_space.shape == (3,)
    assert envs.metadata["autoreset_mode"] == "same-step"
    with TorchCartPole(2) as e:
        e.reset(seed=0)
    with pytest.raises(RuntimeError, match="closed"):
        e.step(torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_envs=0), "num_envs"), (dict(num_envs=2.5), "num_envs"), (dict(num_envs=2, dtype=torch.float16), "dtype"),
    (dict(num_envs=2, initial_states="numpy"), "initial_states"), (dict(num_envs=2, max_episode_steps=0), "max_episode"),
    (dict(num_envs=2, seed=-1), "seed"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TorchCartPole(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without CUDA")
def test_cuda_without_cuda_says_so():
    with pytest.raises(ValueError, match="no CUDA"):
        TorchCartPole(2, device="cuda")


@pytest.mark.parametrize("actions, match", [
    (torch.zeros(3, dtype=torch.long), r"shape \(2,\)"), (torch.zeros((2, 1), dtype=torch.long), "shape"),
    (torch.tensor([0.0, 1.0]), "integers"), (torch.tensor([0, 2]), "env 1 got 2"), (torch.tensor([-1, 0]), "env 0"),
])
def test_bad_actions(actions, match):
    envs = TorchCartPole(2)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        envs.step(actions)


def test_step_before_reset_and_bad_seed():
    envs = TorchCartPole(2)
    with pytest.raises(RuntimeError, match="before reset"):
        envs.step(torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="seed"):
        envs.reset(seed="1")


def test_numpy_actions_are_accepted_and_make_on_device_knows_only_cartpole():
    envs = make_on_device("CartPole-v1", 2, "cpu")
    envs.reset(seed=0)
    assert envs.step(np.array([0, 1]))[0].shape == (2, 4)
    with pytest.raises(ValueError, match="CartPole-v1 only"):
        make_on_device("Acrobot-v1", 2, "cpu")


# ---------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
@cuda
def test_cuda_float32_tracks_cpu_and_stays_on_the_device():
    n = 4096
    gpu, cpu = TorchCartPole(n, device="cuda", initial_states="gymnasium"), exact(n)
    gpu.reset(seed=0), cpu.reset(seed=0)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        actions = torch.randint(0, 2, (n,), generator=g)
        out_g, out_c = gpu.step(actions.cuda()), cpu.step(actions)
        assert all(x.device.type == "cuda" for x in out_g[:4]) and out_g[4]["final_obs"].device.type == "cuda"
        torch.testing.assert_close(out_g[4]["final_obs"].cpu(), out_c[4]["final_obs"], rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="actions on cpu"):
        gpu.step(torch.zeros(n, dtype=torch.long))


@pytest.mark.gpu
@cuda
def test_cuda_float64_lockstep_with_gymnasium_on_short_episodes():
    # CUDA's cos and sin may differ from the C library's in the last bit: identical float32
    # observations over random-action episodes (tens of steps), not over 500-step ones.
    class CudaView(NumpyView):
        def step(self, actions):
            obs, rewards, te, tr, info = self.envs.step(torch.as_tensor(actions).cuda())
            return (obs.cpu().numpy(), rewards.cpu().numpy(), te.cpu().numpy(), tr.cpu().numpy(),
                    {k: v.cpu().numpy() for k, v in info.items()})

        def reset(self, **kwargs):
            obs, info = self.envs.reset(**kwargs)
            return obs.cpu().numpy(), info

    from tests import helpers
    envs = TorchCartPole(8, device="cuda", dtype=torch.float64, initial_states="gymnasium")
    rng = np.random.default_rng(0)
    helpers.gymnasium_lockstep(CudaView(envs), "CartPole-v1", 8, 0, 300, lambda obs: rng.integers(0, 2, len(obs)))
