"""Tests of rlcore.tabular.tiles: the dense tile coder against the book's per-point scheme.

(a) exact: `tile_coordinates` against a naive loop; `TileCoder` and `active_tiles` activate the same
    tiles as the book's `tiles` with an index hash table (the same partition, other numbers),
    also for points on tile boundaries;
(b) structure: exactly one active tile per tiling, in that tiling's block of indices;
(c) generalization: with 8 tilings, moving k/8 of a tile along one dimension changes exactly k
    active tiles; on average over positions a move (dx, dv) shares 8 (1 - dx)(1 - dv) tiles;
(d) bad input: a clear ValueError.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rlcore.tabular.tiles import (
    MOUNTAIN_CAR_CODER,
    IndexHashTable,
    TileCoder,
    active_tiles,
    tile_coordinates,
    tiles,
)

LOW, HIGH = np.array([-1.2, -0.07]), np.array([0.5, 0.07])
CELL = (HIGH - LOW) / 64  # 1/8 of a tile: the resolution of 8 tilings of 8 tiles


def naive_coordinates(floats, num_tilings):
    """The tiles3 coordinates of one point, written out with Python integers."""
    out = []
    for i in range(num_tilings):
        out.append([(math.floor(f * num_tilings) + i * (2 * d + 1)) // num_tilings for d, f in enumerate(floats)])
    return out


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """a, b [P, T]: every index of a corresponds to exactly one index of b and back."""
    forward, backward = {}, {}
    for x, y in zip(a.ravel().tolist(), b.ravel().tolist()):
        if forward.setdefault(x, y) != y or backward.setdefault(y, x) != x:
            return False
    return True


def random_states(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(LOW, HIGH, size=(n, 2))


def grid_states() -> np.ndarray:
    """States exactly on the 1/64 grid lines of the book's scaling (tile boundaries), and the corners."""
    jx = np.arange(-46, 20)
    jv = np.arange(-32, 33)
    x = np.clip(jx * 1.7 / 64, -1.2, 0.5)
    v = np.clip(jv * 0.14 / 64, -0.07, 0.07)
    return np.array(list(itertools.product(x, v)))


# ---------------------------------------------------------------------------------------------
# (a) exact agreement with the book's scheme
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_tilings, dims", [(8, 2), (4, 1), (8, 3), (16, 2), (1, 2)])
def test_tile_coordinates_match_naive_loop(num_tilings, dims):
    floats = np.random.default_rng(num_tilings * 10 + dims).uniform(-7, 7, size=(200, dims))
    got = tile_coordinates(floats, num_tilings)  # [P, T, D]
    want = np.array([naive_coordinates(f, num_tilings) for f in floats.tolist()])
    np.testing.assert_array_equal(got, want)


def test_floor_not_truncation_for_negative_floats():
    # int(-0.3 * 8) would be -2; floor gives -3, and the tile to the left of 0 is coordinate -1.
    np.testing.assert_array_equal(tile_coordinates([[-0.3]], 8)[0, :, 0], [(-3 + i) // 8 for i in range(8)])
    assert tile_coordinates([[-0.01]], 8)[0, 0, 0] == -1


@pytest.mark.parametrize("states", ["random", "grid"])
def test_dense_coder_is_tiles3_with_another_numbering(states):
    points = random_states(3000, 1) if states == "random" else grid_states()
    dense = MOUNTAIN_CAR_CODER(points)  # [P, 8]
    iht = IndexHashTable(4096)
    book = np.array([tiles(iht, 8, [8 * x / (0.5 + 1.2), 8 * v / (0.07 + 0.07)]) for x, v in points.tolist()])
    assert iht.overflow_count == 0
    assert same_partition(dense, book)


def test_active_tiles_equals_the_dense_coder():
    points = np.concatenate([random_states(2000, 2), grid_states()])
    got = np.array([active_tiles(x, v) for x, v in points.tolist()])
    np.testing.assert_array_equal(got, MOUNTAIN_CAR_CODER(points))


def test_coder_shapes_and_sizes():
    coder = MOUNTAIN_CAR_CODER
    assert coder.num_tilings == 8
    np.testing.assert_array_equal(coder.grid, [10, 11])  # 8 tiles per dimension, plus the offsets' overhang
    assert coder.n_features == 8 * 10 * 11 == 880
    assert coder(np.zeros((4, 5, 2))).shape == (4, 5, 8)  # any leading shape
    corners = np.array([[-1.2, -0.07], [-1.2, 0.07], [0.5, -0.07], [0.5, 0.07]])
    idx = coder(corners)
    assert idx.min() >= 0 and idx.max() < coder.n_features


def test_coder_in_three_dimensions_matches_book():
    coder = TileCoder([0.0, -1.0, 2.0], [1.0, 1.0, 5.0], num_tilings=4, tiles_per_dim=[3, 5, 2])
    points = np.random.default_rng(3).uniform([0.0, -1.0, 2.0], [1.0, 1.0, 5.0], size=(1000, 3))
    iht = IndexHashTable(100_000)
    book = np.array([tiles(iht, 4, [3 * p[0] / 1.0, 5 * p[1] / 2.0, 2 * p[2] / 3.0]) for p in points.tolist()])
    assert same_partition(coder(points), book)


# ---------------------------------------------------------------------------------------------
# (b) one tile per tiling
# ---------------------------------------------------------------------------------------------


def test_exactly_one_tile_per_tiling():
    idx = MOUNTAIN_CAR_CODER(random_states(5000, 4))  # [P, 8]
    per_tiling = MOUNTAIN_CAR_CODER.tiles_per_tiling
    # column i holds tiling i's tile, inside that tiling's block of indices
    np.testing.assert_array_equal(idx // per_tiling, np.broadcast_to(np.arange(8), idx.shape))
    assert all(len(set(row)) == 8 for row in idx.tolist())


def test_hash_table_hands_out_indices_in_order_then_collides():
    iht = IndexHashTable(3)
    assert [iht.index((0, 1)), iht.index((0, 2)), iht.index((0, 1)), iht.index((5,))] == [0, 1, 0, 2]
    assert iht.index((9, 9), readonly=True) is None and iht.count() == 3
    assert 0 <= iht.index((9, 9)) < 3 and iht.overflow_count == 1


# ---------------------------------------------------------------------------------------------
# (c) generalization in proportion to distance
# ---------------------------------------------------------------------------------------------


def shared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of active tiles two batches of states share: a, b [P, T] -> [P]."""
    return (a == b).sum(axis=-1)  # one tile per tiling, in the same column


def cell_centres() -> np.ndarray:
    """The 64 states at the centres of the 8 x 8 cells of one tile: every phase of the tilings."""
    qx, qv = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    return np.stack([(qx.ravel() - 20 + 0.5) * 1.7 / 64, (qv.ravel() - 4 + 0.5) * 0.14 / 64], axis=1)


@pytest.mark.parametrize("k", range(0, 10))
@pytest.mark.parametrize("dim", [0, 1])
def test_moving_k_eighths_of_a_tile_changes_k_tiles(k, dim):
    base = cell_centres()
    step = np.zeros(2)
    step[dim] = k * (1.7 / 64 if dim == 0 else 0.14 / 64)
    got = shared(MOUNTAIN_CAR_CODER(base), MOUNTAIN_CAR_CODER(base + step))
    np.testing.assert_array_equal(got, max(8 - k, 0))  # for every starting phase, not just on average


@pytest.mark.parametrize("kx, kv", [(1, 1), (2, 3), (4, 4), (3, 6), (7, 1)])
def test_diagonal_moves_share_in_proportion_to_distance(kx, kv):
    base = cell_centres()
    step = np.array([kx * 1.7 / 64, kv * 0.14 / 64])
    got = shared(MOUNTAIN_CAR_CODER(base), MOUNTAIN_CAR_CODER(base + step))
    # Averaged over the 64 phases, each tiling keeps the tile with probability (1 - kx/8)(1 - kv/8).
    assert got.mean() == pytest.approx(8 * (1 - kx / 8) * (1 - kv / 8))


def test_asymmetric_offsets_avoid_the_diagonal_artefact():
    """With uniform offsets (1, 1) the tilings line up along the diagonal: how many tiles a
    diagonal move keeps depends strongly on where it starts. The asymmetric offsets (1, 3) keep
    the same number on average with much less dependence on the starting point."""
    base = cell_centres()
    step = np.array([2 * 1.7 / 64, 2 * 0.14 / 64])
    asym = shared(MOUNTAIN_CAR_CODER(base), MOUNTAIN_CAR_CODER(base + step))
    # uniform offsets: the same coordinates with offset i in both dimensions
    def uniform(points):
        f = 8 * points / (HIGH - LOW)
        q = np.floor(f * 8).astype(int)
        return np.stack([(q[:, 0, None] + np.arange(8)) // 8, (q[:, 1, None] + np.arange(8)) // 8], axis=-1)

    uni = (uniform(base) == uniform(base + step)).all(axis=-1).sum(axis=-1)
    assert asym.mean() == pytest.approx(uni.mean())  # the same average sharing ...
    assert asym.std() < uni.std()  # ... but far less dependent on where the move starts


# ---------------------------------------------------------------------------------------------
# (d) bad input
# ---------------------------------------------------------------------------------------------


def test_points_outside_the_box_are_refused():
    with pytest.raises(ValueError, match="outside the box"):
        MOUNTAIN_CAR_CODER(np.array([[0.6, 0.0]]))
    with pytest.raises(ValueError, match="NaN"):
        MOUNTAIN_CAR_CODER(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 2\]"):
        MOUNTAIN_CAR_CODER(np.zeros(3))


def test_bad_coder_arguments():
    with pytest.raises(ValueError, match="exceed"):
        TileCoder([0.0], [0.0])
    with pytest.raises(ValueError, match="num_tilings"):
        TileCoder([0.0], [1.0], num_tilings=0)
    with pytest.raises(ValueError, match="equal length"):
        TileCoder([0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        IndexHashTable(0)
