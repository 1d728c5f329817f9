"""Planted-bug variants of the chapter 07 pieces: realistic mistakes the checks must catch.

`BUGS[check_name]` lists (description, buggy function). The correct pieces come first; each bug
changes one thing in them. The loop variants call the correct pieces, so a failure can only come
from the loop itself.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

GAMMA, HIDDEN, LR = 0.9, (64, 64), 3e-3

# ------------------------------------------------------------------------------------------
# The correct pieces
# ------------------------------------------------------------------------------------------


def _net(obs_dim, hidden_sizes, *, activation=nn.Tanh, hidden_gain=math.sqrt(2), out_gain=1.0,
         orthogonal=True, final_activation=False, seed=None):
    if seed is not None:
        torch.manual_seed(seed)
    sizes = [obs_dim, *hidden_sizes, 1]
    layers = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = nn.Linear(a, b)
        last = k == len(sizes) - 2
        if orthogonal:
            nn.init.orthogonal_(layer.weight, out_gain if last else hidden_gain)
            nn.init.zeros_(layer.bias)
        layers.append(layer)
        if not last or final_activation:
            layers.append(activation())
    return nn.Sequential(*layers)


def value_net(obs_dim, hidden_sizes):
    return _net(obs_dim, hidden_sizes)


def regression_step(net, optimizer, obs, targets):
    values = net(obs).squeeze(-1)
    loss = ((values - targets.detach()) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def overfit_one_batch(net, obs, targets, steps, lr):
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    return [regression_step(net, optimizer, obs, targets) for _ in range(steps)]


def td0_targets(rewards, next_values, terminated, truncated, final_values, gamma):
    with torch.no_grad():
        bootstrap = torch.where(terminated | truncated, final_values, next_values)
        return rewards + gamma * (~terminated).float() * bootstrap


def _train(envs, seed, total_timesteps, log, *, targets_fn=td0_targets, step_fn=regression_step, stale_obs=False,
           reset_each_step=False, final_from_next=False):
    torch.manual_seed(seed)
    obs, _ = envs.reset(seed=seed)
    obs = torch.as_tensor(obs, dtype=torch.float32)
    net = value_net(obs.shape[1], HIDDEN)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    actions = np.zeros(envs.num_envs, dtype=np.int64)
    global_step = 0
    while global_step + envs.num_envs <= total_timesteps:
        next_obs, rewards, terminated, truncated, info = envs.step(actions)
        global_step += envs.num_envs
        next_obs = torch.as_tensor(next_obs, dtype=torch.float32)
        final_obs = next_obs if final_from_next else torch.as_tensor(info["final_obs"], dtype=torch.float32)
        with torch.no_grad():
            next_values = net(next_obs).squeeze(-1)
            final_values = net(final_obs).squeeze(-1)
        targets = targets_fn(torch.as_tensor(rewards, dtype=torch.float32), next_values, torch.as_tensor(terminated),
                             torch.as_tensor(truncated), final_values, GAMMA)
        if reset_each_step:
            optimizer = torch.optim.SGD(net.parameters(), lr=LR)
        loss = step_fn(net, optimizer, obs, targets)
        log(global_step, {"losses/value_loss": loss})
        if not stale_obs:
            obs = next_obs
    return net


def train_value(envs, seed, total_timesteps, log):
    return _train(envs, seed, total_timesteps, log)


# ------------------------------------------------------------------------------------------
# value_net
# ------------------------------------------------------------------------------------------


def net_default_init(obs_dim, hidden_sizes):
    return _net(obs_dim, hidden_sizes, orthogonal=False)  # PyTorch's uniform init


def net_gain_one(obs_dim, hidden_sizes):
    return _net(obs_dim, hidden_sizes, hidden_gain=1.0)  # orthogonal, but gain 1 on the hidden layers


def net_policy_gain(obs_dim, hidden_sizes):
    return _net(obs_dim, hidden_sizes, out_gain=0.01)  # the policy head's 0.01 used for the value head


def net_tanh_output(obs_dim, hidden_sizes):
    return _net(obs_dim, hidden_sizes, final_activation=True)  # values squashed into (-1, 1)


def net_relu(obs_dim, hidden_sizes):
    return _net(obs_dim, hidden_sizes, activation=nn.ReLU)


def net_seeded(obs_dim, hidden_sizes):
    return _net(obs_dim, hidden_sizes, seed=0)  # seeds torch itself: every call the same network


# ------------------------------------------------------------------------------------------
# regression_step
# ------------------------------------------------------------------------------------------


def step_broadcast(net, optimizer, obs, targets):
    loss = ((net(obs) - targets.detach()) ** 2).mean()  # [B, 1] - [B] -> [B, B]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_no_zero_grad(net, optimizer, obs, targets):
    loss = ((net(obs).squeeze(-1) - targets.detach()) ** 2).mean()
    loss.backward()  # gradients of every call add up
    optimizer.step()
    return loss.item()


def step_not_detached(net, optimizer, obs, targets):
    loss = ((net(obs).squeeze(-1) - targets) ** 2).mean()  # the gradient also flows into the targets
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_loss_after(net, optimizer, obs, targets):
    regression_step(net, optimizer, obs, targets)
    with torch.no_grad():
        return ((net(obs).squeeze(-1) - targets) ** 2).mean().item()  # the loss after the step


def step_sum(net, optimizer, obs, targets):
    loss = ((net(obs).squeeze(-1) - targets.detach()) ** 2).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def step_before_backward(net, optimizer, obs, targets):
    loss = ((net(obs).squeeze(-1) - targets.detach()) ** 2).mean()
    optimizer.zero_grad()
    optimizer.step()  # steps on no gradient, then computes one that the next call throws away
    loss.backward()
    return loss.item()


def step_new_optimizer(net, optimizer, obs, targets):
    fresh = type(optimizer)(net.parameters(), **{k: v for k, v in optimizer.defaults.items()
                                                 if k in ("lr", "betas", "eps", "momentum")})
    return regression_step(net, fresh, obs, targets)  # Adam's moments start from zero every call


# ------------------------------------------------------------------------------------------
# overfit_one_batch
# ------------------------------------------------------------------------------------------


def overfit_sgd(net, obs, targets, steps, lr):
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    return [regression_step(net, optimizer, obs, targets) for _ in range(steps)]


def overfit_new_optimizer_each_step(net, obs, targets, steps, lr):
    return [regression_step(net, torch.optim.Adam(net.parameters(), lr=lr), obs, targets) for _ in range(steps)]


def overfit_copy(net, obs, targets, steps, lr):
    optimizer = torch.optim.Adam(copy.deepcopy(net).parameters(), lr=lr)  # updates a copy's parameters
    return [regression_step(net, optimizer, obs, targets) for _ in range(steps)]


def overfit_fixed_lr(net, obs, targets, steps, lr):
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)  # ignores lr
    return [regression_step(net, optimizer, obs, targets) for _ in range(steps)]


def overfit_shuffled_targets(net, obs, targets, steps, lr):
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        perm = torch.randperm(len(targets), generator=g)
        losses.append(regression_step(net, optimizer, obs, targets[perm]))  # targets shuffled apart from obs
    return losses


# ------------------------------------------------------------------------------------------
# td0_targets
# ------------------------------------------------------------------------------------------


def targets_through_terminal(rewards, next_values, terminated, truncated, final_values, gamma):
    with torch.no_grad():
        return rewards + gamma * torch.where(terminated | truncated, final_values, next_values)


def targets_truncation_is_termination(rewards, next_values, terminated, truncated, final_values, gamma):
    with torch.no_grad():
        done = terminated | truncated
        return rewards + gamma * (~done).float() * torch.where(done, final_values, next_values)


def targets_next_obs(rewards, next_values, terminated, truncated, final_values, gamma):
    with torch.no_grad():
        return rewards + gamma * (~terminated).float() * next_values  # V(obs), the next episode's first


def targets_not_detached(rewards, next_values, terminated, truncated, final_values, gamma):
    bootstrap = torch.where(terminated | truncated, final_values, next_values)
    return rewards + gamma * (~terminated).float() * bootstrap


def targets_discounted_reward(rewards, next_values, terminated, truncated, final_values, gamma):
    with torch.no_grad():
        return gamma * (rewards + (~terminated).float() * torch.where(terminated | truncated, final_values, next_values))


# ------------------------------------------------------------------------------------------
# train_value
# ------------------------------------------------------------------------------------------


def loop_truncation_is_termination(envs, seed, total_timesteps, log):
    return _train(envs, seed, total_timesteps, log, targets_fn=targets_truncation_is_termination)


def loop_through_terminal(envs, seed, total_timesteps, log):
    return _train(envs, seed, total_timesteps, log, targets_fn=targets_through_terminal)


def loop_stale_obs(envs, seed, total_timesteps, log):
    return _train(envs, seed, total_timesteps, log, stale_obs=True)  # forgets obs = next_obs


def loop_discounted_reward(envs, seed, total_timesteps, log):
    return _train(envs, seed, total_timesteps, log, targets_fn=targets_discounted_reward)


def loop_no_zero_grad(envs, seed, total_timesteps, log):
    return _train(envs, seed, total_timesteps, log, step_fn=step_no_zero_grad)


def loop_one_update(envs, seed, total_timesteps, log):
    """Collects the whole budget, then fits once: a loop whose update sits outside the step loop."""
    torch.manual_seed(seed)
    obs, _ = envs.reset(seed=seed)
    net = value_net(obs.shape[1], HIDDEN)
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    global_step = 0
    while global_step + envs.num_envs <= total_timesteps:
        obs, rewards, terminated, truncated, info = envs.step(np.zeros(envs.num_envs, dtype=np.int64))
        global_step += envs.num_envs
    regression_step(net, optimizer, torch.as_tensor(obs), torch.as_tensor(rewards, dtype=torch.float32))
    return net


def loop_half_budget(envs, seed, total_timesteps, log):
    return _train(envs, seed, total_timesteps // 2, log)


BUGS = {
    "value_net": [
        ("PyTorch's default (uniform) initialisation", net_default_init),
        ("gain 1 on the hidden layers", net_gain_one),
        ("gain 0.01 on the value output", net_policy_gain),
        ("a Tanh after the output layer", net_tanh_output),
        ("ReLU instead of Tanh", net_relu),
        ("seeds torch inside the builder", net_seeded),
    ],
    "regression_step": [
        ("[B, 1] values against [B] targets", step_broadcast),
        ("no optimizer.zero_grad()", step_no_zero_grad),
        ("targets not detached", step_not_detached),
        ("returns the loss after the step", step_loss_after),
        ("sum of squared errors", step_sum),
        ("optimizer.step() before loss.backward()", step_before_backward),
        ("a new optimizer every call", step_new_optimizer),
    ],
    "overfit_one_batch": [
        ("SGD instead of Adam", overfit_sgd),
        ("a new Adam every step", overfit_new_optimizer_each_step),
        ("the optimizer updates a copy of the network", overfit_copy),
        ("lr ignored", overfit_fixed_lr),
        ("targets shuffled apart from their observations", overfit_shuffled_targets),
    ],
    "td0_targets": [
        ("bootstraps through terminated", targets_through_terminal),
        ("truncation treated as termination", targets_truncation_is_termination),
        ("next_values instead of final_values", targets_next_obs),
        ("not detached", targets_not_detached),
        ("the reward discounted too", targets_discounted_reward),
    ],
    "train_value": [
        ("truncation treated as termination", loop_truncation_is_termination),
        ("bootstraps through terminated", loop_through_terminal),
        ("forgets obs = next_obs", loop_stale_obs),
        ("the reward discounted too", loop_discounted_reward),
        ("no zero_grad in the loop's step", loop_no_zero_grad),
        ("one update after collecting everything", loop_one_update),
        ("uses half the budget", loop_half_budget),
    ],
}
