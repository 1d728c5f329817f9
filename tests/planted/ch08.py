"""Planted-bug variants of the chapter 08 pieces: realistic mistakes the checks must catch.

`BUGS[check_name]` lists (description, arguments for the check) for each check; each variant is the
solution with one mistake. Functions take the exercise's signatures. The training-loop variants are
built from the solution notebook's own pieces (`loop_bugs(solution)`), each changing one line of it.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from rlcore import dqn as ref
from rlcore.buffers import ReplayBuffer as RefBuffer

# ------------------------------------------------------------------------------------------
# linear_schedule
# ------------------------------------------------------------------------------------------


def schedule_never_decays(start_e, end_e, duration, t):
    return start_e


def schedule_no_clamp(start_e, end_e, duration, t):
    # Keeps falling past the end of the decay: epsilon goes below end_e (and below 0).
    return start_e + (t / duration) * (end_e - start_e)


def schedule_decays_to_zero(start_e, end_e, duration, t):
    # The wrong end value: decays towards 0 instead of end_e.
    return start_e * (1.0 - min(t / duration, 1.0))


def schedule_integer_division(start_e, end_e, duration, t):
    # t // duration: start_e until the very end of the decay, then a jump to end_e.
    frac = min(t // duration, 1.0)
    return (1.0 - frac) * start_e + frac * end_e


# ------------------------------------------------------------------------------------------
# epsilon_greedy
# ------------------------------------------------------------------------------------------


def eg_one_coin(q_values, epsilon, rng):
    # One coin for the whole batch: every row explores, or none does.
    q = q_values.numpy()
    if rng.random() < epsilon:
        return rng.integers(0, q.shape[1], size=q.shape[0])
    return q.argmax(axis=1)


def eg_random_excludes_greedy(q_values, epsilon, rng):
    # The random action is drawn among the non-greedy actions only.
    q = q_values.numpy()
    n, n_actions = q.shape
    greedy = q.argmax(axis=1)
    other = (greedy + rng.integers(1, n_actions, size=n)) % n_actions
    return np.where(rng.random(n) < epsilon, other, greedy)


def eg_wrong_axis(q_values, epsilon, rng):
    # argmax over the batch axis.
    q = q_values.numpy()
    greedy = q.argmax(axis=0)
    return np.where(rng.random(len(greedy)) < epsilon, rng.integers(0, q.shape[1], size=len(greedy)), greedy)


def eg_global_rng(q_values, epsilon, rng):
    # np.random instead of the rng given: right frequencies, not reproducible.
    q = q_values.numpy()
    n, n_actions = q.shape
    return np.where(np.random.random(n) < epsilon, np.random.randint(0, n_actions, size=n), q.argmax(axis=1))


def eg_inverted(q_values, epsilon, rng):
    # Greedy with probability epsilon.
    q = q_values.numpy()
    n, n_actions = q.shape
    return np.where(rng.random(n) < epsilon, q.argmax(axis=1), rng.integers(0, n_actions, size=n))


# ------------------------------------------------------------------------------------------
# replay_next_obs
# ------------------------------------------------------------------------------------------


def next_obs_reset_obs(next_obs, terminated, truncated, info):
    # Stores what envs.step returned: the NEXT episode's first observation where an episode ended.
    return next_obs.astype(np.float32), terminated.astype(np.float32)


def next_obs_truncated_terminal(next_obs, terminated, truncated, info):
    # Treats the time limit as a terminal state.
    return info["final_obs"].astype(np.float32), (terminated | truncated).astype(np.float32)


def next_obs_final_only_when_terminated(next_obs, terminated, truncated, info):
    # final_obs only where the episode terminated; truncated rows keep the reset observation.
    real = np.where(terminated[:, None], info["final_obs"], next_obs)
    return real.astype(np.float32), terminated.astype(np.float32)


def next_obs_flag_from_truncated(next_obs, terminated, truncated, info):
    # The flags swapped: truncated stops the bootstrap, terminated does not.
    return info["final_obs"].astype(np.float32), truncated.astype(np.float32)


# ------------------------------------------------------------------------------------------
# td_target
# ------------------------------------------------------------------------------------------


def td_bootstraps_through_terminated(q_target_next, rewards, terminated, gamma, q_online_next=None):
    return rewards + gamma * q_target_next.max(dim=1).values


def td_mask_inverted(q_target_next, rewards, terminated, gamma, q_online_next=None):
    return rewards + gamma * terminated * q_target_next.max(dim=1).values


def td_max_over_batch(q_target_next, rewards, terminated, gamma, q_online_next=None):
    # max over dim 0 (the batch), broadcast back over the rows.
    return rewards + gamma * (1.0 - terminated) * q_target_next.max(dim=0).values.max()


def td_double_ignored(q_target_next, rewards, terminated, gamma, q_online_next=None):
    # Double DQN's online network never used: always the plain max.
    return ref.td_target(q_target_next, rewards, terminated, gamma)


def td_double_roles_swapped(q_target_next, rewards, terminated, gamma, q_online_next=None):
    # Double DQN with the roles swapped: the target network picks, the online network scores.
    if q_online_next is None:
        return ref.td_target(q_target_next, rewards, terminated, gamma)
    pick = q_target_next.argmax(dim=1, keepdim=True)
    return rewards + gamma * (1.0 - terminated) * q_online_next.gather(1, pick).squeeze(1)


# ------------------------------------------------------------------------------------------
# dqn_loss
# ------------------------------------------------------------------------------------------


def _target(q_network, target_network, batch, gamma, double_dqn):
    return ref.td_target(target_network(batch["next_obs"]), batch["rewards"], batch["terminated"], gamma,
                         q_network(batch["next_obs"]) if double_dqn else None)


def loss_target_not_detached(q_network, target_network, batch, gamma, double_dqn=False):
    y = _target(q_network, target_network, batch, gamma, double_dqn)  # autograd on
    q_taken = q_network(batch["obs"]).gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
    return F.smooth_l1_loss(q_taken, y), q_taken


def loss_gather_wrong_axis(q_network, target_network, batch, gamma, double_dqn=False):
    with torch.no_grad():
        y = _target(q_network, target_network, batch, gamma, double_dqn)
    q_taken = q_network(batch["obs"]).gather(0, batch["actions"].unsqueeze(1)).squeeze(1)
    return F.smooth_l1_loss(q_taken, y), q_taken


def loss_online_net_for_target(q_network, target_network, batch, gamma, double_dqn=False):
    with torch.no_grad():
        y = _target(q_network, q_network, batch, gamma, double_dqn)
    q_taken = q_network(batch["obs"]).gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
    return F.smooth_l1_loss(q_taken, y), q_taken


def loss_mse(q_network, target_network, batch, gamma, double_dqn=False):
    with torch.no_grad():
        y = _target(q_network, target_network, batch, gamma, double_dqn)
    q_taken = q_network(batch["obs"]).gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
    return F.mse_loss(q_taken, y), q_taken


def loss_max_instead_of_taken(q_network, target_network, batch, gamma, double_dqn=False):
    # Q of the greedy action instead of the action taken.
    with torch.no_grad():
        y = _target(q_network, target_network, batch, gamma, double_dqn)
    q_taken = q_network(batch["obs"]).max(dim=1).values
    return F.smooth_l1_loss(q_taken, y), q_taken


# ------------------------------------------------------------------------------------------
# ReplayBuffer
# ------------------------------------------------------------------------------------------


class BufferSamplesEmptyRows(RefBuffer):
    """Samples from the whole capacity, including rows never written."""

    def __init__(self, capacity, obs_shape):
        super().__init__(capacity, obs_shape)

    def sample(self, batch_size, rng):
        idx = rng.integers(0, self.capacity, size=batch_size)
        return {k: torch.as_tensor(getattr(self, k)[idx]) for k in ("obs", "actions", "rewards", "next_obs", "terminated")}


class BufferNoWrap(RefBuffer):
    """When full, keeps overwriting the last row instead of the oldest."""

    def __init__(self, capacity, obs_shape):
        super().__init__(capacity, obs_shape)

    def add(self, obs, actions, rewards, next_obs, terminated):
        for i in range(len(actions)):
            row = min(self.pos, self.capacity - 1)
            self.obs[row], self.next_obs[row], self.actions[row] = obs[i], next_obs[i], actions[i]
            self.rewards[row], self.terminated[row] = rewards[i], terminated[i]
            self.pos = min(self.pos + 1, self.capacity)
            self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size, rng):
        return super().sample(batch_size, rng)


class BufferShuffledFields(RefBuffer):
    """Draws separate indices for the observations and for the other fields."""

    def __init__(self, capacity, obs_shape):
        super().__init__(capacity, obs_shape)

    def sample(self, batch_size, rng):
        i, j = rng.integers(0, self.size, size=batch_size), rng.integers(0, self.size, size=batch_size)
        return {"obs": torch.as_tensor(self.obs[i]), "next_obs": torch.as_tensor(self.next_obs[i]),
                "actions": torch.as_tensor(self.actions[j]), "rewards": torch.as_tensor(self.rewards[j]),
                "terminated": torch.as_tensor(self.terminated[j])}


class BufferFirstRowsOnly(RefBuffer):
    """Samples only the oldest half of what is stored (indices drawn from size // 2)."""

    def __init__(self, capacity, obs_shape):
        super().__init__(capacity, obs_shape)

    def sample(self, batch_size, rng):
        idx = rng.integers(0, max(self.size // 2, 1), size=batch_size)
        return {k: torch.as_tensor(getattr(self, k)[idx]) for k in ("obs", "actions", "rewards", "next_obs", "terminated")}


class BufferGlobalRng(RefBuffer):
    """np.random instead of the rng given."""

    def __init__(self, capacity, obs_shape):
        super().__init__(capacity, obs_shape)

    def sample(self, batch_size, rng):
        idx = np.random.randint(0, self.size, size=batch_size)
        return {k: torch.as_tensor(getattr(self, k)[idx]) for k in ("obs", "actions", "rewards", "next_obs", "terminated")}


# ------------------------------------------------------------------------------------------
# train_dqn: the solution's loop with one line changed
# ------------------------------------------------------------------------------------------


def make_loop(bug: str | None = None):
    """The exercise's training loop (built from rlcore's pieces) with one planted mistake, or none.

    bug: "epsilon_per_episode" (the schedule is fed the episode count), "epsilon_constant" (start_e throughout),
    "target_never_synced",
    "bootstrap_through_terminal" (the buffer stores terminal = 0), "reset_obs_and_truncated_terminal"
    (stores next_obs and terminated | truncated), "no_zero_grad" (gradients accumulate).
    """
    from rlcore.dqn import CARTPOLE_FAST
    from rlcore.nets import QNetwork

    settings = {k: v for k, v in CARTPOLE_FAST.items() if k not in ("num_envs", "total_timesteps", "huber")}

    def train_dqn(envs, seed, total_timesteps, log):
        s = settings
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        n = envs.num_envs
        q_network = QNetwork(envs.single_observation_space, envs.single_action_space, s["hidden"])
        target_network = copy.deepcopy(q_network)
        optimizer = torch.optim.Adam(q_network.parameters(), lr=s["learning_rate"], fused=True)
        buffer = RefBuffer(s["buffer_size"], envs.single_observation_space.shape)
        duration = s["exploration_fraction"] * total_timesteps
        obs, _ = envs.reset(seed=seed)
        global_step, episodes, last_log = 0, 0, 0
        while global_step < total_timesteps:
            t = episodes if bug == "epsilon_per_episode" else global_step
            epsilon = ref.linear_schedule(s["start_e"], s["end_e"], duration, t)
            if bug == "epsilon_constant":
                epsilon = s["start_e"]
            with torch.no_grad():
                q_values = q_network(torch.as_tensor(obs))
            actions = np.where(rng.random(n) < epsilon, rng.integers(0, q_values.shape[1], size=n),
                               q_values.argmax(dim=1).numpy())
            next_obs, rewards, terminated, truncated, info = envs.step(actions)
            episodes += int(np.sum(terminated | truncated))
            if bug == "bootstrap_through_terminal":
                buffer.add(obs, actions, rewards, info["final_obs"], np.zeros(n))
            elif bug == "reset_obs_and_truncated_terminal":
                buffer.add(obs, actions, rewards, next_obs, terminated | truncated)
            else:
                buffer.add(obs, actions, rewards, info["final_obs"], terminated)
            obs = next_obs
            global_step += n
            if global_step > s["learning_starts"] and global_step % s["train_frequency"] < n:
                if s["anneal_lr"]:
                    optimizer.param_groups[0]["lr"] = s["learning_rate"] * (1 - global_step / total_timesteps)
                for _ in range(s["gradient_steps"]):
                    batch = buffer.sample(s["batch_size"], rng)
                    with torch.no_grad():
                        y = ref.td_target(target_network(batch["next_obs"]), batch["rewards"], batch["terminated"],
                                          s["gamma"], q_network(batch["next_obs"]) if s["double_dqn"] else None)
                    q_taken = q_network(batch["obs"]).gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
                    loss = F.smooth_l1_loss(q_taken, y)
                    if bug != "no_zero_grad":
                        optimizer.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(q_network.parameters(), s["max_grad_norm"])
                    optimizer.step()
                if global_step - last_log >= 2000:
                    last_log = global_step
                    log(global_step, {"losses/td_loss": loss.item(), "losses/q_values": q_taken.mean().item(),
                                      "charts/epsilon": epsilon})
            if bug != "target_never_synced" and global_step % s["target_network_frequency"] < n:
                target_network.load_state_dict(q_network.state_dict())
        return q_network

    train_dqn.__name__ = "train_dqn"
    return train_dqn


LOOP_BUGS = ["epsilon_per_episode", "epsilon_constant", "target_never_synced", "bootstrap_through_terminal", "no_zero_grad",
             "reset_obs_and_truncated_terminal"]


BUGS = {
    "linear_schedule": [
        ("epsilon never decays", (schedule_never_decays,)),
        ("no clamp: epsilon keeps falling past end_e", (schedule_no_clamp,)),
        ("wrong end value: decays to 0", (schedule_decays_to_zero,)),
        ("integer division t // duration", (schedule_integer_division,)),
    ],
    "epsilon_greedy": [
        ("one coin for the whole batch", (eg_one_coin,)),
        ("random action excludes the greedy one", (eg_random_excludes_greedy,)),
        ("argmax over the batch axis", (eg_wrong_axis,)),
        ("np.random instead of rng", (eg_global_rng,)),
        ("greedy with probability epsilon", (eg_inverted,)),
    ],
    "replay_next_obs": [
        ("stores the reset observation", (next_obs_reset_obs,)),
        ("truncated treated as terminal", (next_obs_truncated_terminal,)),
        ("final_obs only where terminated", (next_obs_final_only_when_terminated,)),
        ("terminal flag from truncated", (next_obs_flag_from_truncated,)),
    ],
    "td_target": [
        ("bootstraps through terminated", (td_bootstraps_through_terminated,)),
        ("terminal mask inverted", (td_mask_inverted,)),
        ("max over the batch axis", (td_max_over_batch,)),
        ("double DQN ignores the online network", (td_double_ignored,)),
        ("double DQN roles swapped", (td_double_roles_swapped,)),
    ],
    "dqn_loss": [
        ("target not detached", (loss_target_not_detached,)),
        ("gather on the wrong axis", (loss_gather_wrong_axis,)),
        ("online network used for the target", (loss_online_net_for_target,)),
        ("squared error instead of Huber", (loss_mse,)),
        ("max Q instead of Q of the taken action", (loss_max_instead_of_taken,)),
    ],
    "ReplayBuffer": [
        ("samples rows never written", (BufferSamplesEmptyRows,)),
        ("overwrites the last row when full", (BufferNoWrap,)),
        ("separate indices for different fields", (BufferShuffledFields,)),
        ("samples only the oldest half", (BufferFirstRowsOnly,)),
        ("np.random instead of rng", (BufferGlobalRng,)),
    ],
    "train_dqn": [
        ("epsilon decayed per episode, not per step", (make_loop("epsilon_per_episode"),)),
        ("epsilon never decays: start_e throughout", (make_loop("epsilon_constant"),)),
        ("target network never synchronised", (make_loop("target_never_synced"),)),
        ("bootstraps through terminal states", (make_loop("bootstrap_through_terminal"),)),
    ],
}
