"""Options of one GIO selection run (the arguments of the reference ``GIOKL.fit``).

``GIOConfig`` is a pydantic dataclass: values are checked and converted by their types
(text such as ``"300"`` or ``"1e-3"`` becomes a number), enumerations are ``Literal`` types,
and an unknown option is an error.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from ..validation import Flag, choices, describe

StopCriterion = Literal[
    "increase",
    "max_resets",
    "min_difference",
    "sequential_increase_tolerance",
    "min_kl",
    "data_size",
]
VInit = Literal["mean", "prev_opt", "jump"]
Optimizer = Literal["gradient", "exact"]
DType = Literal["float32", "float64"]

STOP_CRITERIA = choices(StopCriterion)
V_INITS = choices(VInit)
OPTIMIZERS = choices(Optimizer)
DTYPES = choices(DType)

NonNegative = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class GIOConfig:
    """All knobs of the GIO loop; names follow the reference ``GIOKL.fit``.

    Differences from the reference are documented in the README ("Differences from
    grad-info-opt"): ``max_iter`` bounds the number of added points exactly, the
    ``max_resets`` and ``sequential_increase_tolerance`` criteria stop as documented,
    ``min_kl`` keeps the point that crosses the threshold, and an exhausted pool stops
    the run with ``pool_exhausted`` instead of crashing.
    """

    k: Annotated[int, Field(ge=1)] = 5
    max_iter: NonNegative = 100
    stop_criterion: StopCriterion = "increase"
    min_difference: float = 0.0
    resets_allowed: Flag = False
    max_resets: NonNegative = 2
    max_data_size: Fraction = 1.0
    min_kl: float = 0.0
    max_sequential_increases: NonNegative = 3
    random_init_pct: Fraction = 0.0
    random_restart_prob: Fraction = 0.0
    scale_factor: Union[Literal["auto"], Positive] = "auto"
    v_init: VInit = "mean"
    grad_desc_iter: NonNegative = 50
    discard_nearest_for_xy: Flag = False
    lr: Positive = 0.01
    eps: Positive = 1e-8
    uniform_low: float = -1.0
    uniform_high: float = 1.0
    uniform_start_size: Annotated[int, Field(ge=1)] = 20
    normalize: Flag = True
    optimizer: Optimizer = "gradient"
    seed: int = 0
    dtype: DType = "float32"

    @model_validator(mode="after")
    def _uniform_range(self) -> "GIOConfig":
        if not self.uniform_low < self.uniform_high:
            raise ValueError(f"uniform_low ({self.uniform_low}) must be below uniform_high ({self.uniform_high})")
        return self

    @property
    def uses_resets(self) -> bool:
        """Whether an increase may reset the pool (always so for ``max_resets``)."""
        return self.resets_allowed or self.stop_criterion == "max_resets"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "GIOConfig":
        """Build from a mapping; a bad or unknown option is a one-line ValueError naming it."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ValueError(describe(exc, cls, unknown="GIO option")) from None
