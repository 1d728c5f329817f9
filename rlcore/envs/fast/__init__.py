"""Batched environments for throughput: one object steps N copies of an environment with array
operations, instead of N Python objects stepped in a loop.

Each one follows the vector-env protocol of `rlcore.envs.vector` (SAME-STEP autoreset, `final_obs`,
episode statistics) and reproduces its Gymnasium counterpart exactly: the tests step both in lockstep.

    from rlcore.envs.fast import CartPole
    envs = CartPole(num_envs=64)
    obs, info = envs.reset(seed=0)          # obs [64, 4] float32

    from rlcore.envs.fast import Acrobot    # Acrobot-v1: obs [N, 6], actions in {0, 1, 2}
    from rlcore.envs.fast import MountainCar  # MountainCar-v0: obs [N, 2], actions in {0, 1, 2}
"""

from rlcore.envs.fast.acrobot import Acrobot
from rlcore.envs.fast.cartpole import CartPole
from rlcore.envs.fast.mountain_car import MountainCar

__all__ = ["Acrobot", "CartPole", "MountainCar"]
