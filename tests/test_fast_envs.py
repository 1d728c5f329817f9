"""Bad input to the batched rlcore.envs.fast environments: every one refuses it with the same clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from rlcore.envs import make_vector
from rlcore.envs.fast import Acrobot, CartPole

ENVS = [pytest.param(CartPole, id="CartPole"), pytest.param(Acrobot, id="Acrobot")]


def reset(env_class, n: int):
    envs = env_class(n)
    envs.reset(seed=0)
    return envs


@pytest.mark.parametrize("env_class", ENVS)
def test_step_before_reset(env_class):
    with pytest.raises(RuntimeError, match="before reset"):
        env_class(2).step(np.array([0, 1]))


@pytest.mark.parametrize("env_class", ENVS)
@pytest.mark.parametrize("actions", [np.array([0, 1, 0]), np.array([[0, 1]]), np.array(1), [0]])
def test_wrong_action_shape(env_class, actions):
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        reset(env_class, 2).step(actions)


@pytest.mark.parametrize("env_class", ENVS)
def test_action_out_of_range_names_the_env(env_class):
    for bad in (env_class(1).single_action_space.n, -1):
        with pytest.raises(ValueError, match=f"env 1 got {bad}"):
            reset(env_class, 3).step(np.array([0, bad, 1]))


@pytest.mark.parametrize("env_class", ENVS)
def test_fractional_action(env_class):
    with pytest.raises(ValueError, match="integers"):
        reset(env_class, 2).step(np.array([0.5, 1.0]))


@pytest.mark.parametrize("env_class", ENVS)
def test_closed_env_refuses_to_step_and_reset(env_class):
    envs = reset(env_class, 2)
    envs.close()
    with pytest.raises(RuntimeError, match="closed"):
        envs.step(np.array([0, 1]))
    with pytest.raises(RuntimeError, match="closed"):
        envs.reset(seed=0)


@pytest.mark.parametrize("env_class", ENVS)
@pytest.mark.parametrize("num_envs", [0, -3, 2.5])
def test_bad_num_envs(env_class, num_envs):
    with pytest.raises(ValueError, match="num_envs"):
        env_class(num_envs)


def test_no_fast_version_of_other_envs():
    with pytest.raises(ValueError, match="no fast implementation"):
        make_vector("Pendulum-v1", 2, backend="fast")


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1"])
def test_fast_backend_rejects_unknown_keyword(env_id):
    with pytest.raises(ValueError, match="does not accept"):
        make_vector(env_id, 2, backend="fast", gravity=3.0)
