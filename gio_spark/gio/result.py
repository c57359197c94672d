"""The outcome of one GIO selection."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .config import GIOConfig


@dataclass
class SelectionResult:
    """What a GIO run selected and why it stopped.

    ``selected_indices`` are rows of the pool in the order the loop added them (the
    initial set is not included; with resets a row can appear more than once).
    ``init_indices`` are the pool rows drawn as the initial set by ``random_init_pct``
    (empty for a uniform or given start); they belong to the selection too.
    ``kl_curve[i]`` is the relaxed KL after the (i+1)-th added point.
    """

    selected_indices: np.ndarray
    kl_curve: np.ndarray
    initial_kl: float
    stop_reason: str
    iterations: int
    n_resets: int
    gd_steps: int
    init_indices: np.ndarray
    init_size: int
    config: GIOConfig
    timings: dict[str, float] = field(default_factory=dict)
    # budget runs: the budget, the weight selected, and where GIO's own criterion would have stopped
    budget: Optional[float] = None
    weight_selected: Optional[float] = None
    own_stop_points: Optional[int] = None
    own_stop_reason: Optional[str] = None

    @property
    def final_kl(self) -> float:
        return float(self.kl_curve[-1]) if len(self.kl_curve) else float(self.initial_kl)

    @property
    def chosen_indices(self) -> np.ndarray:
        """Distinct pool rows of the selection: random initial rows, then added rows."""
        both = np.concatenate([self.init_indices, self.selected_indices]).astype(np.int64)
        _, first = np.unique(both, return_index=True)
        return both[np.sort(first)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "selected_indices": [int(i) for i in self.selected_indices],
            "init_indices": [int(i) for i in self.init_indices],
            "kl_curve": [float(x) for x in self.kl_curve],
            "initial_kl": float(self.initial_kl),
            "final_kl": self.final_kl,
            "stop_reason": self.stop_reason,
            "iterations": int(self.iterations),
            "points_added": int(len(self.selected_indices)),
            "n_resets": int(self.n_resets),
            "gd_steps": int(self.gd_steps),
            "init_size": int(self.init_size),
            "timings": {k: float(v) for k, v in self.timings.items()},
            "config": self.config.to_dict(),
            **({"budget": self.budget, "weight_selected": self.weight_selected, "own_stop_points": self.own_stop_points,
                "own_stop_reason": self.own_stop_reason} if self.budget is not None else {}),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)
