"""Tile coding (Sutton & Barto, 2nd ed., section 9.5.4): the book's scheme and a dense equivalent.

A *tiling* partitions the (scaled) state space into a grid of tiles; a state activates the one
tile of the tiling that contains it. With several tilings, each shifted by a fraction of a tile
width, a state activates exactly one tile per tiling, and two states share as many tiles as there
are tilings in which they fall into the same tile: nearby states share most, distant ones none.
The feature vector is binary with `num_tilings` ones, so a linear value is the sum of
`num_tilings` weights, and an update touches only those.

The book's software (tiles3, called as `tiles(iht, 8, [8*x/(0.5+1.2), 8*xdot/(0.07+0.07)], [A])`
for Mountain Car) works on floats already scaled so that one tile is 1 unit wide:

    q_d = floor(f_d * T)                              the float in 1/T-tile steps   (T tilings)
    c_{i,d} = floor((q_d + i * (2d + 1)) / T)         the tile coordinate in tiling i, dimension d

Tiling i is shifted by i/T of a tile in dimension 0, 3i/T in dimension 1, 5i/T in dimension 2 ...:
the *asymmetric* offsets (1, 3, 5, ...) the book recommends (uniform offsets (1, 1) line the tilings
up along the diagonal). The coordinates (i, c_{i,0}, c_{i,1}, ..., ints) are then hashed to an index
with an index hash table, which hands out 0, 1, 2 ... in order of first appearance until it is full.

`tile_coordinates` computes those coordinates for a whole batch of points. `IndexHashTable` and
`tiles` are the book's per-point scheme (used by the tests as the naive reference). `TileCoder` is
the dense equivalent the course uses: on a bounded domain every coordinate has a known range, so
the tiles can be numbered directly, tiling by tiling, without a hash. It activates the same tiles
as tiles3 with a table large enough to have no collisions, only under other numbers, and since all
weights start equal, learning with either is the same.

Shapes: points [..., D] -> coordinates [..., T, D] -> indices [..., T].
"""

from __future__ import annotations

import math

import numpy as np


def tile_coordinates(floats, num_tilings: int) -> np.ndarray:
    """tiles3's integer tile coordinates for scaled floats (one tile is 1 unit wide).

    floats [..., D] -> coords [..., T, D] int64, coords[..., i, d] = floor((floor(f_d * T) + i * (2d + 1)) / T)
    """
    f = np.asarray(floats, dtype=np.float64)
    q = np.floor(f * num_tilings).astype(np.int64)  # [..., D]; floor, not int(): int(-0.5) is 0
    d = np.arange(f.shape[-1])
    offsets = np.arange(num_tilings)[:, None] * (2 * d + 1)  # [T, D]: i * (1, 3, 5, ...)
    return np.floor_divide(q[..., None, :] + offsets, num_tilings)  # [..., T, D]


class IndexHashTable:
    """tiles3's index hash table: coordinates -> index, in order of first appearance.

    Until `size` indices are handed out, every new coordinate tuple gets the next free index, so
    there are no collisions. After that, new tuples share indices (hash(coords) % size), and
    `overflow_count` says how often that happened.
    """

    def __init__(self, size: int):
        if int(size) < 1:
            raise ValueError(f"size must be a positive number of indices, got {size}.")
        self.size = int(size)
        self.table: dict[tuple, int] = {}
        self.overflow_count = 0

    def count(self) -> int:
        return len(self.table)

    def index(self, coords: tuple, readonly: bool = False) -> int | None:
        if coords in self.table:
            return self.table[coords]
        if readonly:
            return None
        if len(self.table) >= self.size:
            self.overflow_count += 1
            return hash(coords) % self.size
        self.table[coords] = len(self.table)
        return self.table[coords]


def tiles(iht: IndexHashTable, num_tilings: int, floats, ints=(), readonly: bool = False) -> list:
    """The book's tile coder for one point: the indices of the active tile of each tiling, [T].

    floats: D scaled floats (one tile = 1 unit); ints: extra integers hashed along (the action).
    Written as a plain loop, the way the book's software is, so the tests can use it as the naive
    reference for `tile_coordinates` and `TileCoder`.
    """
    quantized = [math.floor(f * num_tilings) for f in floats]
    active = []
    for tiling in range(num_tilings):
        coords = [tiling]
        offset = tiling  # tiling * 1 in dimension 0, then tiling * 3, tiling * 5, ...
        for q in quantized:
            coords.append((q + offset) // num_tilings)  # Python's // floors, like np.floor_divide
            offset += 2 * tiling
        coords.extend(ints)
        active.append(iht.index(tuple(coords), readonly))
    return active


class TileCoder:
    """Dense tile coding of a box [low, high] in D dimensions, equivalent to the book's tiles3.

    tiles_per_dim tiles span each dimension's range, so the scaled floats are
    f_d = tiles_per_dim * x_d / (high_d - low_d), exactly the book's call for Mountain Car
    (8 * x / (0.5 + 1.2)). As in the book, the grid is anchored at 0, not at `low`.

    Tile i of tiling t gets index t * tiles_per_tiling + (its coordinates, numbered row-major
    from the smallest coordinate reachable in the box). Indices lie in [0, n_features).

    __call__(points [..., D]) -> indices [..., T] int64, one active tile per tiling.
    """

    def __init__(self, low, high, *, num_tilings: int = 8, tiles_per_dim=8):
        self.low = np.atleast_1d(np.asarray(low, dtype=np.float64))
        self.high = np.atleast_1d(np.asarray(high, dtype=np.float64))
        if self.low.shape != self.high.shape or self.low.ndim != 1:
            raise ValueError(f"low and high must be 1-d and of equal length; got shapes {self.low.shape} and {self.high.shape}.")
        if not np.all(self.high > self.low):
            raise ValueError(f"every high must exceed its low; got low {self.low.tolist()}, high {self.high.tolist()}.")
        if int(num_tilings) < 1:
            raise ValueError(f"num_tilings must be at least 1, got {num_tilings}.")
        self.num_tilings = int(num_tilings)
        self.tiles_per_dim = np.broadcast_to(np.asarray(tiles_per_dim, dtype=np.float64), self.low.shape).copy()
        self.dims = self.low.size
        # The coordinate range over the box: the smallest in tiling 0 at `low`, the largest in the
        # last tiling (largest offset) at `high`.
        c_low = tile_coordinates(self._scale(self.low), self.num_tilings)[0]  # [D], tiling 0
        c_high = tile_coordinates(self._scale(self.high), self.num_tilings)[-1]  # [D], last tiling
        self.coord_min = c_low
        self.grid = c_high - c_low + 1  # [D] tiles per dimension (a few more than tiles_per_dim)
        self.tiles_per_tiling = int(np.prod(self.grid))
        self.n_features = self.num_tilings * self.tiles_per_tiling
        # Row-major strides of the per-tiling grid and the offset of each tiling's block.
        self._strides = np.cumprod(np.concatenate([self.grid[1:], [1]])[::-1])[::-1]  # [D]
        self._tiling_base = np.arange(self.num_tilings) * self.tiles_per_tiling  # [T]

    def _scale(self, points: np.ndarray) -> np.ndarray:
        # Same operation order as the book's 8 * x / (0.5 + 1.2): points on a tile boundary fall
        # on the same side as they do in tiles3.
        return self.tiles_per_dim * points / (self.high - self.low)

    def __call__(self, points) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64)
        if p.shape[-1:] != (self.dims,):
            raise ValueError(f"points must have shape [..., {self.dims}]; got {p.shape}.")
        if np.isnan(p).any():
            raise ValueError("points contain NaN.")
        outside = (p < self.low) | (p > self.high)
        if outside.any():
            where = np.argwhere(outside)[0]
            raise ValueError(f"point {p[tuple(where[:-1])].tolist()} lies outside the box low {self.low.tolist()}, "
                             f"high {self.high.tolist()} (dimension {where[-1]}); clip it or widen the box.")
        coords = tile_coordinates(self._scale(p), self.num_tilings) - self.coord_min  # [..., T, D]
        return coords @ self._strides + self._tiling_base  # [..., T]


def mountain_car_coder(num_tilings: int = 8, tiles_per_dim: int = 8) -> TileCoder:
    """The book's Mountain Car tiling: 8 tilings of 8 x 8 tiles over position x velocity."""
    from rlcore.tabular.mountain_car import POSITION_MAX, POSITION_MIN, VELOCITY_MAX, VELOCITY_MIN

    return TileCoder([POSITION_MIN, VELOCITY_MIN], [POSITION_MAX, VELOCITY_MAX],
                     num_tilings=num_tilings, tiles_per_dim=tiles_per_dim)


MOUNTAIN_CAR_CODER = mountain_car_coder()


def active_tiles(position: float, velocity: float) -> list[int]:
    """The 8 active tiles of one Mountain Car state, numbered as MOUNTAIN_CAR_CODER numbers them.

    The exercise's function, written for one state with plain Python arithmetic (five times faster
    than a numpy call on 2 numbers): position, velocity -> list of 8 ints in [0, 880).
    """
    coder = MOUNTAIN_CAR_CODER
    T = coder.num_tilings
    x_min, v_min = (int(c) for c in coder.coord_min)
    per_tiling, n_v = coder.tiles_per_tiling, int(coder.grid[1])
    qx = math.floor(T * (8 * position / (0.5 + 1.2)))  # the book's scaled floats, in 1/8-tile steps
    qv = math.floor(T * (8 * velocity / (0.07 + 0.07)))
    return [i * per_tiling + ((qx + i) // T - x_min) * n_v + ((qv + 3 * i) // T - v_min) for i in range(T)]
