"""REINFORCE (Williams 1992): Monte Carlo policy gradient with reward-to-go and an optional learned baseline.

    from rlcore.reinforce import REINFORCEConfig, train
    result = train(REINFORCEConfig(env_id="CartPole-v1", total_timesteps=200_000))

    python -m rlcore reinforce --env-id CartPole-v1 --seed 1 --total-timesteps 200000 --run-dir runs/rf

Sections: config -> seeding -> envs -> networks -> storage -> losses -> loop (collect, targets, update, log).

Each update uses N complete episodes, one per environment: all N environments are reset, stepped until
every one has finished its episode, and the steps an environment takes after its episode ended are
masked out (storage [T, N] with a validity mask, T = the longest episode). `global_step` counts the steps
of the collected episodes only.

The gradient estimate is mean over valid (t, i) of grad log pi(a_t | s_t) * (G_t - b(s_t)), with G_t the
reward-to-go (only rewards from t on: earlier rewards add variance, not signal) and b a learned value
baseline (baseline=True), trained by regression on G_t. A time-limit truncation is treated as the end of
the episode here: Monte Carlo returns have nothing to bootstrap from. That biases G_t near the limit,
which is one reason actor-critic methods (rlcore.a2c) bootstrap instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from rlcore.checkpoint import load_checkpoint, save_checkpoint
from rlcore.config import RunOptions
from rlcore.envs import given_or_made
from rlcore.metrics import Recorder, Result
from rlcore.nets import ActorCritic
from rlcore.seeding import env_seed, seed_everything

# ---------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class REINFORCEConfig(RunOptions):
    """Hyperparameters of a REINFORCE run (defaults solve CartPole-v1 in about 200k steps)."""

    env_id: str = "CartPole-v1"
    """Gymnasium id of the environment."""
    seed: int = 1
    """Seeds the networks, action sampling and environments."""
    total_timesteps: int = 200_000
    """Steps of collected episodes over the whole run."""
    num_envs: int = 8
    """Episodes per update (one per environment)."""
    learning_rate: float = 1e-2
    """Adam step size of the policy (and of the baseline)."""
    gamma: float = 0.99
    """Discount factor."""
    baseline: bool = True
    """Subtract a learned state-value baseline from the reward-to-go."""
    norm_adv: bool = True
    """Normalize the weights G_t - b(s_t) to mean 0, std 1 over the batch."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy (and baseline) network."""
    checkpoint_every: int = 50
    """Save a checkpoint every this many updates when run_dir is set."""

    def __post_init__(self):
        self.require_positive("total_timesteps", "num_envs", "checkpoint_every")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}.")


def reward_to_go(rewards: torch.Tensor, valid: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = sum_{k >= t} gamma^(k - t) r_k within each column's episode. rewards, valid [T, N] -> [T, N].

    Each column holds one episode followed by masked padding, so the backward recursion needs no reset."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] * valid[t] + gamma * running
        returns[t] = running
    return returns


def train(config: REINFORCEConfig, envs=None) -> Result:
    """Train REINFORCE; returns the policy (an ActorCritic whose critic is the baseline) and its curve.

    envs: a vector env (rlcore.envs protocol, config.num_envs environments) to train in instead of
    building one from config.env_id; the caller keeps it open. The autograder passes its own here.
    """
    # ------------------------------------------------------------------------------------ seeding
    rng = seed_everything(config.seed)
    device = config.torch_device()

    # --------------------------------------------------------------------------------------- envs
    N = config.num_envs
    envs, own_envs = given_or_made(envs, config.env_id, N, config.backend)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    continuous = isinstance(act_space, gym.spaces.Box)

    # ----------------------------------------------------------------------------------- networks
    agent = ActorCritic(obs_space, act_space, config.hidden).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate)

    # ------------------------------------------------------------------------------ resume or start
    state = load_checkpoint(Path(config.run_dir) / "checkpoint.pt") if config.run_dir else None
    update, global_step = 0, 0
    if state is not None:
        agent.load_state_dict(state["agent"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        update, global_step = state["update"], state["global_step"]
    run_dir = Path(config.run_dir) if config.run_dir else None
    rec = Recorder(config, total_steps=config.total_timesteps, desc=f"reinforce {config.env_id}", run_dir=run_dir,
                   progress=config.progress, tensorboard=config.tensorboard, resume_state=state)

    # ---------------------------------------------------------------------------------------- loop
    try:
        while global_step < config.total_timesteps:
            # ---- collect: one complete episode per environment; storage grows with the longest
            obs, _ = envs.reset(seed=env_seed(config.seed + global_step + int(rng.integers(1 << 20)), 0, N))
            obs_list, act_list, rew_list, valid_list = [], [], [], []
            running = np.ones(N, dtype=bool)  # env i is still in its first episode
            while running.any():
                obs_t = torch.as_tensor(obs, device=device)
                actions, _, _ = agent.act(obs_t)
                env_actions = actions.cpu().numpy()
                if continuous:
                    env_actions = np.clip(env_actions, act_space.low, act_space.high)
                obs, rewards, terminated, truncated, info = envs.step(env_actions)
                obs_list.append(obs_t), act_list.append(actions)
                rew_list.append(torch.as_tensor(rewards, device=device))
                valid_list.append(torch.as_tensor(running.copy(), device=device))
                ended = (terminated | truncated) & running
                global_step += int(running.sum())
                rec.episodes_ended(global_step, info, ended)
                running &= ~ended
            b_obs, b_actions = torch.stack(obs_list), torch.stack(act_list)  # [T, N, ...]
            rewards_tn, valid = torch.stack(rew_list), torch.stack(valid_list).float()  # [T, N]

            # ---- targets: reward-to-go, minus the baseline
            returns = reward_to_go(rewards_tn, valid, config.gamma)  # [T, N]
            mask = valid.bool()
            logprob, entropy = agent.log_prob_entropy(b_obs[mask], b_actions[mask])  # [M] valid steps
            g = returns[mask]
            if config.baseline:
                values = agent.value(b_obs[mask])
                weights = g - values.detach()  # the baseline must not carry the policy's gradient
                value_loss = 0.5 * ((values - g) ** 2).mean()
            else:
                weights, value_loss = g, torch.zeros((), device=device)
            if config.norm_adv and weights.numel() > 1:
                weights = (weights - weights.mean()) / (weights.std() + 1e-8)

            # ---- losses and update: one gradient step per batch of episodes
            policy_loss = -(logprob * weights).mean()
            optimizer.zero_grad(set_to_none=True)
            (policy_loss + value_loss).backward()
            optimizer.step()
            update += 1

            # ---- log
            rec.log(global_step, {"losses/policy_loss": policy_loss.item(), "losses/value_loss": value_loss.item(),
                                  "losses/entropy": entropy.mean().item(), "charts/sps": rec.sps(global_step)})
            rec.advance(global_step)
            if run_dir is not None and (update % config.checkpoint_every == 0 or global_step >= config.total_timesteps):
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
