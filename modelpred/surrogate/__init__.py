"""The DeepSets surrogate Â(S) ≈ A(S): network, losses, trainer and predictor.

Â(S) = ρ(c · Σ_{(x,y)∈S} φ(x, y)) is trained on permutation samples with the
loss ‖θ_S − Â(S)‖ + w_kkt ‖∇L(Â(S); S)‖ + w_util |U(S; Â(S)) − U(S; θ_S)|
(``modelpred``), with the first term only (``paralearn``), or on the test
utility of A(S) directly (``utllearn``).

Typical use::

    from modelpred.surrogate import SurrogateConfig, fit_surrogate, load_surrogate

    result = fit_surrogate(model, X, y, permutations, theta, config=SurrogateConfig(epochs=100))
    theta_hat = result.surrogate.predict(X_all, y_all, masks)          # (B, p)
    result.surrogate.save("modelpred.pt")                              # + modelpred.json
    same = load_surrogate("modelpred.pt")
"""

from .config import METHODS, SurrogateConfig, loss_weights
from .losses import (
    LossTerms,
    kkt_loss,
    parameter_loss,
    permutation_ranks,
    prefix_masks,
    surrogate_loss_terms,
    utility_loss,
)
from .network import DeepSets, encode_elements, prefix_pool
from .predictor import Surrogate, load_surrogate, resolve_device, sidecar_path
from .stage import checkpoint_path, train_surrogate
from .trainer import TrainingResult, fit_surrogate, split_permutations

__all__ = [
    "METHODS",
    "DeepSets",
    "LossTerms",
    "Surrogate",
    "SurrogateConfig",
    "TrainingResult",
    "checkpoint_path",
    "encode_elements",
    "fit_surrogate",
    "kkt_loss",
    "load_surrogate",
    "loss_weights",
    "parameter_loss",
    "permutation_ranks",
    "prefix_masks",
    "prefix_pool",
    "resolve_device",
    "sidecar_path",
    "split_permutations",
    "surrogate_loss_terms",
    "train_surrogate",
    "utility_loss",
]
