"""Planted-bug variants of the chapter 03 pieces: realistic mistakes the checks must catch.

`BUGS[check_name]` lists (description, buggy function). Each is the solution with one mistake a
learner makes, written the way a learner would (plain loops), so the checks see realistic code.
`STATISTICAL_BUGS` are estimators whose output the Figure 5.1 / 5.3 rules alone must reject:
tests feed their results straight to the `judge_*` functions, to show the statistical rules can fail.
"""

from __future__ import annotations

import numpy as np

from rlcore.tabular.blackjack import DECISION_STATES, N_STATES, obs_index, threshold_policy

# ------------------------------------------------------------------------------------------
# play_episode
# ------------------------------------------------------------------------------------------


def play_records_next_state(env, policy):
    states, actions, rewards = [], [], []
    obs, _ = env.reset()
    done = False
    while not done:
        a = int(policy[obs_index(obs)])
        obs, reward, terminated, truncated, _ = env.step(a)
        states.append(obs_index(obs))  # the state after the step, not the one acted in
        actions.append(a)
        rewards.append(reward)
        done = terminated or truncated
    return np.array(states), np.array(actions), np.array(rewards, dtype=float)


def play_reseeds_every_episode(env, policy):
    states, actions, rewards = [], [], []
    obs, _ = env.reset(seed=0)  # the same deal in every episode
    done = False
    while not done:
        s = obs_index(obs)
        obs, reward, terminated, truncated, _ = env.step(int(policy[s]))
        states.append(s)
        actions.append(int(policy[s]))
        rewards.append(reward)
        done = terminated or truncated
    return np.array(states), np.array(actions), np.array(rewards, dtype=float)


def play_drops_last_step(env, policy):
    states, actions, rewards = [], [], []
    obs, _ = env.reset()
    while True:
        s = obs_index(obs)
        a = int(policy[s])
        obs, reward, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            break  # the final step, with the only nonzero reward, is never recorded
        states.append(s)
        actions.append(a)
        rewards.append(reward)
    return np.array(states, dtype=int), np.array(actions, dtype=int), np.array(rewards, dtype=float)


def _play_with(env, policy):
    states, actions, rewards = [], [], []
    obs, _ = env.reset()
    done = False
    while not done:
        s = obs_index(obs)
        a = int(policy[s])
        obs, reward, terminated, truncated, _ = env.step(a)
        states.append(s)
        actions.append(a)
        rewards.append(reward)
        done = terminated or truncated
    return np.array(states), np.array(actions), np.array(rewards, dtype=float)


def play_ignores_policy(env, policy):
    return _play_with(env, threshold_policy(20))  # the book's policy, whatever the caller asks


# ------------------------------------------------------------------------------------------
# mc_prediction
# ------------------------------------------------------------------------------------------


def _prediction(episodes, n_states, gamma, first_visit, *, visit_rule="first", use_gamma=True, forward=False,
                per_episode=False):
    total = np.zeros(n_states)
    N = np.zeros(n_states, dtype=int)
    n_episodes = 0
    for states, actions, rewards in episodes:
        n_episodes += 1
        states, rewards = list(states), list(rewards)
        g = gamma if use_gamma else 1.0
        if forward:
            G_t, acc = [], 0.0
            for r in rewards:  # accumulated from the start instead of to the end
                acc = acc * g + r
                G_t.append(acc)
        else:
            G_t, acc = [0.0] * len(rewards), 0.0
            for t in range(len(rewards) - 1, -1, -1):
                acc = g * acc + rewards[t]
                G_t[t] = acc
        for t, s in enumerate(states):
            if first_visit and visit_rule == "first" and s in states[:t]:
                continue
            if first_visit and visit_rule == "last" and s in states[t + 1:]:
                continue
            total[s] += G_t[t]
            N[s] += 1
    denominator = np.full(n_states, max(n_episodes, 1)) if per_episode else N
    V = np.divide(total, denominator, out=np.zeros(n_states), where=denominator > 0)
    return V, N


def pred_every_visit_always(episodes, n_states, gamma=1.0, first_visit=True):
    return _prediction(episodes, n_states, gamma, False)


def pred_last_visit(episodes, n_states, gamma=1.0, first_visit=True):
    return _prediction(episodes, n_states, gamma, first_visit, visit_rule="last")


def pred_gamma_ignored(episodes, n_states, gamma=1.0, first_visit=True):
    return _prediction(episodes, n_states, gamma, first_visit, use_gamma=False)


def pred_forward_returns(episodes, n_states, gamma=1.0, first_visit=True):
    return _prediction(episodes, n_states, gamma, first_visit, forward=True)


def pred_divides_by_episodes(episodes, n_states, gamma=1.0, first_visit=True):
    return _prediction(episodes, n_states, gamma, first_visit, per_episode=True)


# ------------------------------------------------------------------------------------------
# mc_es
# ------------------------------------------------------------------------------------------


def _es(generate_episode, n_episodes, rng, *, explore_action=True, first_visit=True, improve=True,
        accumulate=True, initial=None, start_states=DECISION_STATES):
    Q = np.zeros((N_STATES, 2))
    N = np.zeros((N_STATES, 2), dtype=int)
    policy = threshold_policy(20) if initial is None else initial.copy()
    for _ in range(n_episodes):
        s0 = start_states[rng.integers(len(start_states))]
        a0 = rng.integers(2) if explore_action else policy[s0]
        states, actions, rewards = generate_episode(s0, a0, policy)
        pairs = list(zip(states, actions))
        G = 0.0
        for t in range(len(pairs) - 1, -1, -1):
            G = G + rewards[t] if accumulate else rewards[t]
            if first_visit and pairs[t] in pairs[:t]:
                continue
            s, a = pairs[t]
            N[s, a] += 1
            Q[s, a] += (G - Q[s, a]) / N[s, a]
            if improve:
                policy[s] = np.argmax(Q[s])
    return Q, policy


def es_no_exploring_action(generate_episode, n_episodes, rng):
    return _es(generate_episode, n_episodes, rng, explore_action=False)


def es_every_visit(generate_episode, n_episodes, rng):
    return _es(generate_episode, n_episodes, rng, first_visit=False)


def es_never_improves(generate_episode, n_episodes, rng):
    return _es(generate_episode, n_episodes, rng, improve=False)


def es_reward_not_return(generate_episode, n_episodes, rng):
    return _es(generate_episode, n_episodes, rng, accumulate=False)


def es_initial_policy_sticks(generate_episode, n_episodes, rng):
    return _es(generate_episode, n_episodes, rng, initial=np.zeros(N_STATES, dtype=int))


def es_starts_from_every_state(generate_episode, n_episodes, rng):
    return _es(generate_episode, n_episodes, rng, start_states=np.arange(N_STATES))


# ------------------------------------------------------------------------------------------
# off_policy_estimates
# ------------------------------------------------------------------------------------------


def _is(episodes, target, behavior, gamma=1.0, *, ratio="all", denominator="ratios", swap=False):
    n = len(episodes)
    ordinary, weighted = np.zeros(n), np.zeros(n)
    num = den = 0.0
    for k, (states, actions, rewards) in enumerate(episodes):
        G = 0.0
        for t in range(len(states) - 1, -1, -1):
            G = gamma * G + rewards[t]
        steps = {"all": range(len(states)), "first": range(1), "no_last": range(len(states) - 1)}[ratio]
        rho = 1.0
        for t in steps:
            if ratio == "inverted":
                rho *= behavior[states[t], actions[t]] / target[states[t], actions[t]]
            else:
                rho *= target[states[t], actions[t]] / behavior[states[t], actions[t]]
        num += rho * G
        den += rho if denominator == "ratios" else float(rho > 0)
        ordinary[k] = num / (k + 1)
        weighted[k] = num / den if den > 0 else 0.0
    return (weighted, ordinary) if swap else (ordinary, weighted)


def is_first_step_ratio(episodes, target, behavior, gamma=1.0):
    return _is(episodes, target, behavior, gamma, ratio="first")


def is_ratio_without_last_step(episodes, target, behavior, gamma=1.0):
    return _is(episodes, target, behavior, gamma, ratio="no_last")


def is_weighted_counts_episodes(episodes, target, behavior, gamma=1.0):
    return _is(episodes, target, behavior, gamma, denominator="count")


def is_swapped(episodes, target, behavior, gamma=1.0):
    return _is(episodes, target, behavior, gamma, swap=True)


def is_ratio_inverted(episodes, target, behavior, gamma=1.0):
    n = len(episodes)
    ordinary, weighted = np.zeros(n), np.zeros(n)
    num = den = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, (states, actions, rewards) in enumerate(episodes):
            rho = np.prod(behavior[states, actions] / target[states, actions])  # behavior / target: inf where target is 0
            G = float(np.sum(rewards * gamma ** np.arange(len(rewards))))
            num += rho * G
            den += rho
            ordinary[k] = num / (k + 1)
            weighted[k] = num / den if den > 0 else 0.0
    return ordinary, weighted


BUGS = {
    "play_episode": [("records the state after each step", play_records_next_state),
                     ("resets with seed=0 every episode", play_reseeds_every_episode),
                     ("drops the last step and its reward", play_drops_last_step),
                     ("ignores the policy it is given", play_ignores_policy)],
    "mc_prediction": [("first_visit ignored (always every visit)", pred_every_visit_always),
                      ("last visit instead of first", pred_last_visit),
                      ("gamma ignored", pred_gamma_ignored),
                      ("returns accumulated from the start of the episode", pred_forward_returns),
                      ("divides by the number of episodes instead of N", pred_divides_by_episodes)],
    "mc_es": [("first action from the policy (no exploring action)", es_no_exploring_action),
              ("every-visit updates", es_every_visit),
              ("policy never improved", es_never_improves),
              ("the step's reward instead of the return", es_reward_not_return),
              ("initial policy sticks everywhere", es_initial_policy_sticks),
              ("starts drawn from all 360 states", es_starts_from_every_state)],
    "off_policy_estimates": [("ratio of the first step only", is_first_step_ratio),
                             ("ratio without the last step", is_ratio_without_last_step),
                             ("weighted denominator counts episodes with rho > 0", is_weighted_counts_episodes),
                             ("ordinary and weighted swapped", is_swapped),
                             ("ratio inverted (behavior / target)", is_ratio_inverted)],
}
