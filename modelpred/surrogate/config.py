"""Hyper-parameters of the DeepSets surrogate and the three training methods.

The methods share one network and differ in target and loss:

- ``modelpred``: predicts θ with the parameter, KKT and utility terms,
- ``paralearn``: predicts θ with the parameter term only (w_kkt = w_util = w_marginal = 0),
- ``utllearn``: predicts the scalar test utility of A(S) directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

METHODS = ("modelpred", "paralearn", "utllearn")
"""Training methods; the first two output θ, the last one a scalar utility."""


@dataclass(frozen=True)
class SurrogateConfig:
    """Hyper-parameters of one surrogate training run.

    Attributes
    ----------
    hidden : int
        Units of every hidden layer of φ and ρ.
    layers : int
        Fully connected layers of φ and of ρ each.
    epochs : int
        Maximum passes over the training permutations.
    lr : float
        Adam learning rate.
    weight_decay : float
        Adam's L2 weight decay.
    batch_permutations : int
        Permutations per optimiser step. One step trains on all their
        prefixes, so it trains on ``batch_permutations * n`` subsets.
    val_fraction : float
        Fraction of the permutations held out (whole permutations) for early
        stopping. 0 stops on the training loss instead.
    patience : int
        Epochs without a lower validation loss before training stops.
    w_kkt : float
        Weight of the KKT term ‖∇L(Â(S); S)‖ (``modelpred`` only). The
        gradient is of the summed objective, so it grows with |S|; 0.1 keeps
        it comparable to the parameter term for sets of a few hundred
        points. On spam `lr` (150 epochs), 0.1 gave deletion NRMSE 8.1%
        against 11.1% with 1.0, and 0.01 gave 8.1% as well.
    w_util : float
        Weight of the utility term |U(S; Â(S)) − U(S; θ_S)| (``modelpred`` only).
    w_marginal : float
        Weight of the marginal term |S'|·‖(Â(S') − Â(S)) − (θ_S' − θ_S)‖ on
        consecutive prefixes S' = S ∪ {i} (``modelpred`` only). The parameter
        term is dominated by how θ grows with |S|, so without this term the
        network learns that trend but responds weakly to which point was
        added. One point moves θ by about 1/|S'| of its influence, hence the
        factor |S'|. This term is not in the paper, whose loss is this one with
        weight 0. On spam `lr`,
        weight 5 raised the Spearman correlation of ModelPred's Shapley
        values with the solver's from 0.04 to 0.71 (300 permutations) and
        left the prefix utilities' error as it was.
    regulariser_prefixes : int or None
        Prefixes per permutation at which the KKT and utility terms are
        computed in a training step, drawn afresh each step (validation uses
        one fixed draw). Each such prefix costs a pass over all n points, so
        a permutation costs O(n²) with every prefix and O(r·n) with r of
        them. The estimate of the regularisers' mean is unbiased. ``None``
        computes them at every prefix, as the paper does. The parameter term
        always uses every prefix. The default is 32.
    seed : int
        Seeds the weight initialisation, the validation split, the order
        of permutations within each epoch and the regularised prefixes.
    device : str
        ``"auto"`` (``cuda`` when available, else ``cpu``) or a torch device.
    """

    hidden: int = 128
    layers: int = 3
    epochs: int = 300
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_permutations: int = 8
    val_fraction: float = 0.2
    patience: int = 30
    w_kkt: float = 0.1
    w_util: float = 1.0
    w_marginal: float = 5.0
    regulariser_prefixes: int | None = 32
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        positive_ints = ("hidden", "layers", "batch_permutations", "patience")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"surrogate config '{name}' must be an integer >= 1, got {value!r}"
                )
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 0:
            raise ValueError(
                f"surrogate config 'epochs' must be an integer >= 0, got {self.epochs!r}"
            )
        prefixes = self.regulariser_prefixes
        if prefixes is not None and (
            not isinstance(prefixes, int) or isinstance(prefixes, bool) or prefixes < 1
        ):
            raise ValueError(
                "surrogate config 'regulariser_prefixes' must be an integer >= 1 or null, "
                f"got {prefixes!r}"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"surrogate config 'seed' must be an integer >= 0, got {self.seed!r}")
        if not self.lr > 0:
            raise ValueError(f"surrogate config 'lr' must be positive, got {self.lr!r}")
        for name in ("weight_decay", "w_kkt", "w_util", "w_marginal"):
            if not getattr(self, name) >= 0:
                raise ValueError(
                    f"surrogate config '{name}' must be >= 0, got {getattr(self, name)!r}"
                )
        if not 0 <= self.val_fraction < 1:
            raise ValueError(
                f"surrogate config 'val_fraction' must be in [0, 1), got {self.val_fraction!r}"
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SurrogateConfig:
        """Build a config from a mapping, rejecting unknown keys.

        Raises
        ------
        ValueError
            If a key is not a field of :class:`SurrogateConfig` or a value is
            out of range.
        """
        values = dict(values or {})
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown surrogate config keys {unknown}; allowed keys are {sorted(known)}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (for JSON sidecars)."""
        return dataclasses.asdict(self)


def check_method(method: str) -> str:
    """Return ``method`` if it is one of :data:`METHODS`, else raise ValueError."""
    if method not in METHODS:
        raise ValueError(f"unknown surrogate method {method!r}; choose one of {list(METHODS)}")
    return method


def loss_weights(method: str, config: SurrogateConfig) -> tuple[float, float, float]:
    """Return the (w_kkt, w_util, w_marginal) that ``method`` trains with.

    ParaLearn is ModelPred without regularisers and UtlLearn has no θ to
    regularise, so both use (0, 0, 0) whatever the config sets.
    """
    check_method(method)
    if method == "modelpred":
        return float(config.w_kkt), float(config.w_util), float(config.w_marginal)
    return 0.0, 0.0, 0.0
