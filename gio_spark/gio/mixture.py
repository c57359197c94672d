"""Several targets over one pool: each target's share of a budget, and each pool cluster given to
one target at most.

Every target has its own GIO order over the same pool clusters. The targets take clusters in
rounds, by position in their orders: in round r, each target that still wants more takes the
cluster at position r of its order unless another target took it already, that is, ranked it
earlier (or at the same position and is listed first). A target whose cluster was taken goes on
in its own order. With shares (a budget), a target takes clusters until their weights reach its
share, the last one counted for what is left of the share (the write stage cuts it); without,
it takes what GIO chose before its own stop, less what others took first. A target takes no
cluster it would keep nothing of: none with a share of 0, and none whose smallest item (one pair,
or its shortest pair's tokens) is more than what is left of its share; so a target with weight 0
changes nothing for the others. Numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np


@dataclass
class Claims:
    """What one target took: clusters in the order of its GIO order, the rank of each there,
    and, with a share, how much of its last cluster it keeps."""

    clusters: list[int] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    keep_last: Optional[float] = None  # weight kept of the last cluster (a share cut it)
    taken_by_others: float = 0.0  # weight of clusters it wanted (before its last; all without a share) others took
    reached: float = 0.0  # weight it took (the last cluster counted for keep_last)


def shares(weights: Sequence[float], amount: float, whole: bool) -> list[float]:
    """``amount`` split in proportion to ``weights``; with ``whole``, in whole units that add up
    to ``amount`` exactly (the largest remainders get the units left over, ties to the first)."""
    w = np.asarray(weights, dtype=np.float64)
    exact = amount * w / w.sum()
    if not whole:
        return exact.tolist()
    floor = np.floor(exact)
    left = int(round(amount - floor.sum()))
    order = sorted(range(len(w)), key=lambda i: (-(exact[i] - floor[i]), i))
    floor[order[:left]] += 1
    return floor.tolist()


def claim(orders: Sequence[Sequence[int]], weight: np.ndarray, wanted: Sequence[Optional[float]],
          smallest: Optional[np.ndarray] = None) -> list[Claims]:
    """Each target's clusters, none taken twice. ``orders[t]`` is target t's GIO order (cluster
    indices); ``weight[c]`` what cluster c holds (pairs or tokens); ``wanted[t]`` target t's
    share, or None to take its whole order (less what others took first); ``smallest[c]`` the
    least a target keeps of cluster c if it keeps anything (default 1: one pair)."""
    owner: dict[int, int] = {}
    out = [Claims() for _ in orders]
    least = np.ones(len(weight)) if smallest is None else np.asarray(smallest, dtype=np.float64)
    active = [w is None or w > 0 for w in wanted]
    for r in range(max((len(o) for o in orders), default=0)):
        for t, order in enumerate(orders):
            if not active[t] or r >= len(order):
                continue
            c = int(order[r])
            mine = out[t]
            if c in owner or (wanted[t] is not None and wanted[t] - mine.reached < least[c]):
                continue  # another's, or it would keep none of it
            owner[c] = t
            mine.clusters.append(c)
            mine.ranks.append(r)
            if wanted[t] is None:
                mine.reached += float(weight[c])
                continue
            left = wanted[t] - mine.reached
            if weight[c] >= left:
                mine.keep_last = left if weight[c] > left else None
                mine.reached = float(wanted[t])
                active[t] = False
            else:
                mine.reached += float(weight[c])
    for t, mine in enumerate(out):  # with a share, what others took after its last cluster was not wanted
        last = len(orders[t]) if wanted[t] is None or not mine.ranks else mine.ranks[-1]
        mine.taken_by_others = float(sum(weight[int(c)] for r, c in enumerate(orders[t])
                                         if r < last and owner.get(int(c)) not in (None, t)))
    return out
