"""Advantage actor-critic (A2C, the synchronous form of Mnih et al. 2016's A3C), with GAE and an entropy bonus.

    from rlcore.a2c import A2CConfig, train
    result = train(A2CConfig(env_id="CartPole-v1", total_timesteps=200_000))

    python -m rlcore a2c --env-id CartPole-v1 --seed 1 --total-timesteps 200000 --run-dir runs/a2c

Sections: config -> seeding -> envs -> networks -> storage -> losses -> loop (collect, targets, update, log).

Every update: N environments take T = num_steps steps (n-step bootstrapping: the critic fills in the
value after the rollout), advantages come from GAE (gae_lambda = 1 gives the classic n-step advantage
R_t^(n) - V(s_t)), and ONE gradient step is taken on

    loss = -mean(log pi(a_t|s_t) * A_t) + vf_coef * mean((G_t - V(s_t))^2) / 2 - ent_coef * mean(entropy)

with RMSprop as in the paper (and SB3). Unlike PPO there are no epochs and no ratio: each sample is used
once, by the policy that collected it, so the gradient is an unbiased on-policy estimate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from rlcore.buffers import Rollout
from rlcore.checkpoint import load_checkpoint, save_checkpoint
from rlcore.config import RunOptions
from rlcore.envs import given_or_made
from rlcore.metrics import Recorder, Result
from rlcore.nets import ActorCritic
from rlcore.returns import gae
from rlcore.seeding import env_seed, seed_everything

# ---------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class A2CConfig(RunOptions):
    """Hyperparameters of an A2C run. Defaults follow SB3's A2C (16 envs here, for the fast backend)."""

    env_id: str = "CartPole-v1"
    """Gymnasium id of the environment."""
    seed: int = 1
    """Seeds the networks, action sampling and environments."""
    total_timesteps: int = 500_000
    """Environment steps over all environments."""
    num_envs: int = 16
    """Environments stepped together (N)."""
    num_steps: int = 5
    """Steps per environment per update: the n of n-step returns (T)."""
    learning_rate: float = 7e-4
    """RMSprop step size."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE lambda; 1 = n-step returns minus V."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm to this."""
    norm_adv: bool = False
    """Normalize advantages over the batch (off in the original A2C)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the actor and of the critic."""
    checkpoint_every: int = 1000
    """Save a checkpoint every this many updates when run_dir is set."""

    def __post_init__(self):
        self.require_positive("total_timesteps", "num_envs", "num_steps", "checkpoint_every")
        if self.total_timesteps < self.batch_size:
            raise ValueError(f"total_timesteps = {self.total_timesteps} is less than one update "
                             f"(num_envs * num_steps = {self.batch_size}); raise it or shrink the rollout.")
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError(f"gamma and gae_lambda must be in [0, 1], got {self.gamma} and {self.gae_lambda}.")

    @property
    def batch_size(self) -> int:
        """Samples per update: num_envs * num_steps."""
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        """Rollout + update cycles: total_timesteps // batch_size."""
        return self.total_timesteps // self.batch_size


# CartPole-v1, graded at 80k steps: SB3's A2C (16 envs x 5 steps, RMSprop, no entropy bonus, gradient norm
# 0.5) with the learning rate raised from 7e-4 to 1.5e-3 and gamma lowered from 0.99 to 0.98. Tuned for
# chapter 10's graded curve, which seven seeds of a correct loop must pass at least 99% of the time. A2C's
# last-100 means on CartPole have a heavy left tail (a seed that collapses late, to 100-430, about one
# run in ten), so near the end of training, where most seeds sit at 500 and the SD is small, one such
# seed among seven fails the non-inferiority rule: at 150k steps 79% of 7-seed resamples of 30 reference
# seeds passed. Mid-curve the spread is wide and the tail no longer decides: 99.7% passed at 80k
# (autograder/references/ch10_actor_critic.json keeps the table). Seven seeds of a learner's plain loop
# take about half a minute of CPU on two cores.
CARTPOLE_GRADED = dict(num_envs=16, num_steps=5, learning_rate=1.5e-3, gamma=0.98, gae_lambda=1.0, ent_coef=0.0,
                       vf_coef=0.5, max_grad_norm=0.5, total_timesteps=80_000)


def train(config: A2CConfig, envs=None) -> Result:
    """Train A2C; returns the actor-critic and its training curve. Resumes from run_dir/checkpoint.pt if present.

    envs: a vector env (rlcore.envs protocol, config.num_envs environments) to train in instead of
    building one from config.env_id; the caller keeps it open. The autograder passes its own here.
    """
    # ------------------------------------------------------------------------------------ seeding
    seed_everything(config.seed)
    device = config.torch_device()

    # --------------------------------------------------------------------------------------- envs
    T, N = config.num_steps, config.num_envs
    envs, own_envs = given_or_made(envs, config.env_id, N, config.backend)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    continuous = isinstance(act_space, gym.spaces.Box)

    # ----------------------------------------------------------------------------------- networks
    agent = ActorCritic(obs_space, act_space, config.hidden).to(device)
    optimizer = torch.optim.RMSprop(agent.parameters(), lr=config.learning_rate, alpha=0.99, eps=1e-5)

    # ------------------------------------------------------------------------------------ storage
    rollout = Rollout(T, N, obs_space.shape, act_space.shape, continuous=continuous, device=device)

    # ------------------------------------------------------------------------------ resume or start
    state = load_checkpoint(Path(config.run_dir) / "checkpoint.pt") if config.run_dir else None
    start_update, global_step = 1, 0
    if state is not None:
        agent.load_state_dict(state["agent"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start_update, global_step = state["update"] + 1, state["global_step"]
    run_dir = Path(config.run_dir) if config.run_dir else None
    rec = Recorder(config, total_steps=config.num_updates * config.batch_size, desc=f"a2c {config.env_id}",
                   run_dir=run_dir, progress=config.progress, tensorboard=config.tensorboard, resume_state=state)
    raw_obs, _ = envs.reset(seed=env_seed(config.seed + global_step, 0, N))
    next_obs = torch.as_tensor(raw_obs, device=device)

    # ---------------------------------------------------------------------------------------- loop
    try:
        for update in range(start_update, config.num_updates + 1):
            # ---- collect
            for t in range(T):
                obs = next_obs
                actions, logprob, value = agent.act(obs)
                env_actions = actions.cpu().numpy()
                if continuous:
                    env_actions = np.clip(env_actions, act_space.low, act_space.high)
                raw_obs, rewards, terminated, truncated, info = envs.step(env_actions)
                global_step += N
                rec.episodes_ended(global_step, info, terminated | truncated)
                rollout.add(t, obs, actions, logprob, value, rewards, terminated, truncated, info["final_obs"])
                next_obs = torch.as_tensor(raw_obs, device=device)

            # ---- targets
            next_values = rollout.bootstrap(agent.value, next_obs)
            advantages = gae(rollout.rewards, rollout.values, next_values, rollout.terminated, rollout.truncated,
                             config.gamma, config.gae_lambda)  # [T, N]
            returns = (advantages + rollout.values).reshape(-1)  # [T * N]
            b_advantages = advantages.reshape(-1)
            if config.norm_adv:
                b_advantages = (b_advantages - b_advantages.mean()) / (b_advantages.std() + 1e-8)

            # ---- losses and update: one gradient step, re-evaluating the rollout with gradients on
            b_obs = rollout.obs.reshape(T * N, *obs_space.shape)
            logprob, entropy = agent.log_prob_entropy(b_obs, rollout.actions.reshape(T * N, *act_space.shape))
            values = agent.value(b_obs)
            policy_loss = -(logprob * b_advantages).mean()
            value_loss = 0.5 * ((returns - values) ** 2).mean()
            entropy_loss = entropy.mean()
            loss = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(agent.parameters(), config.max_grad_norm)
            optimizer.step()

            # ---- log (every 20 updates: an update here is only T * N steps)
            if update % 20 == 0 or update == config.num_updates:
                var_y = returns.var()
                explained_var = float("nan") if var_y == 0 else (1 - (returns - rollout.values.reshape(-1)).var()
                                                                  / var_y).item()
                rec.log(global_step, {"losses/policy_loss": policy_loss.item(), "losses/value_loss": value_loss.item(),
                                      "losses/entropy": entropy_loss.item(), "losses/explained_variance": explained_var,
                                      "charts/sps": rec.sps(global_step)})
                rec.advance(global_step)
            if run_dir is not None and (update % config.checkpoint_every == 0 or update == config.num_updates):
                rec.flush()
                save_checkpoint(run_dir / "checkpoint.pt", {
                    "agent": agent.state_dict(), "optimizer": optimizer.state_dict(), "update": update,
                    "global_step": global_step, "episodes": rec.episodes, "torch_rng": torch.get_rng_state(),
                    "config": dataclasses.asdict(config)})
    finally:
        rec.close()
        if own_envs:
            envs.close()
    return rec.result(config, agent, global_step)
