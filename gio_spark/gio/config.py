"""Options of one GIO selection run (the arguments of the reference ``GIOKL.fit``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Union

STOP_CRITERIA = (
    "increase",
    "max_resets",
    "min_difference",
    "sequential_increase_tolerance",
    "min_kl",
    "data_size",
)
V_INITS = ("mean", "prev_opt", "jump")
OPTIMIZERS = ("gradient", "exact")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class GIOConfig:
    """All knobs of the GIO loop; names follow the reference ``GIOKL.fit``.

    Differences from the reference are documented in the README ("Differences from
    grad-info-opt"): ``max_iter`` bounds the number of added points exactly, the
    ``max_resets`` and ``sequential_increase_tolerance`` criteria stop as documented,
    ``min_kl`` keeps the point that crosses the threshold, and an exhausted pool stops
    the run with ``pool_exhausted`` instead of crashing.
    """

    k: int = 5
    max_iter: int = 100
    stop_criterion: str = "increase"
    min_difference: float = 0.0
    resets_allowed: bool = False
    max_resets: int = 2
    max_data_size: float = 1.0
    min_kl: float = 0.0
    max_sequential_increases: int = 3
    random_init_pct: float = 0.0
    random_restart_prob: float = 0.0
    scale_factor: Union[float, str] = "auto"
    v_init: str = "mean"
    grad_desc_iter: int = 50
    discard_nearest_for_xy: bool = False
    lr: float = 0.01
    eps: float = 1e-8
    uniform_low: float = -1.0
    uniform_high: float = 1.0
    uniform_start_size: int = 20
    normalize: bool = True
    optimizer: str = "gradient"
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> None:
            raise ValueError(f"invalid GIO option {name}={getattr(self, name)!r}: {why}")

        _check_choice(self, "stop_criterion", STOP_CRITERIA)
        _check_choice(self, "v_init", V_INITS)
        _check_choice(self, "optimizer", OPTIMIZERS)
        _check_choice(self, "dtype", DTYPES)
        if self.k < 1:
            bad("k", "must be at least 1")
        if self.max_iter < 0:
            bad("max_iter", "must be >= 0")
        if self.max_resets < 0:
            bad("max_resets", "must be >= 0")
        if self.max_sequential_increases < 0:
            bad("max_sequential_increases", "must be >= 0")
        if not 0.0 <= self.max_data_size <= 1.0:
            bad("max_data_size", "is a fraction of the pool in [0, 1]")
        if not 0.0 <= self.random_init_pct <= 1.0:
            bad("random_init_pct", "is a fraction of the pool in [0, 1]")
        if not 0.0 <= self.random_restart_prob <= 1.0:
            bad("random_restart_prob", "is a probability in [0, 1]")
        if self.grad_desc_iter < 0:
            bad("grad_desc_iter", "must be >= 0")
        if not self.lr > 0:
            bad("lr", "must be > 0")
        if not self.eps > 0:
            bad("eps", "must be > 0")
        if self.uniform_start_size < 1:
            bad("uniform_start_size", "must be at least 1")
        if not self.uniform_low < self.uniform_high:
            bad("uniform_low", "must be below uniform_high")
        if isinstance(self.scale_factor, str):
            if self.scale_factor != "auto":
                bad("scale_factor", "is 'auto' or a positive number")
        elif not float(self.scale_factor) > 0:
            bad("scale_factor", "is 'auto' or a positive number")

    @property
    def uses_resets(self) -> bool:
        """Whether an increase may reset the pool (always so for ``max_resets``)."""
        return self.resets_allowed or self.stop_criterion == "max_resets"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "GIOConfig":
        """Build from a mapping, rejecting unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown GIO option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)


def _check_choice(cfg: GIOConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in choices:
        raise ValueError(f"invalid GIO option {name}={value!r}: choose one of {', '.join(choices)}")
