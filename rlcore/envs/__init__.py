"""Environments: making them, vectorizing them, and small probe tasks to debug learners.

    make_env(env_id, **kwargs)                    one Gymnasium env (rlcore.envs.make)
    make_vector(env_id, num_envs, backend=...)    N envs behind one batched step (rlcore.envs.vector)
    VectorEnv                                     the protocol every vector env follows
    rlcore.envs.probes                            the probe ids rlcore/Probe1-... to rlcore/Probe7-...
    rlcore.envs.fast                              batched NumPy environments for throughput
"""

from rlcore.envs.make import given_or_made, make_env, make_vector
from rlcore.envs.vector import SerialVectorEnv, SubprocessVectorEnv, VectorEnv

__all__ = ["given_or_made", "make_env", "make_vector", "VectorEnv", "SerialVectorEnv", "SubprocessVectorEnv"]
