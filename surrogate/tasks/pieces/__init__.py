"""Piece-wise class models: the class posterior from per-class (or per-region) fits combined by their marginal likelihoods.

The softmax class model (``inpaint.stan``) feeds relaxed class weights to the decoder,
and its posterior has well-separated modes that single chains cannot cross. Two
remedies split the posterior into pieces, one per class c, sample each piece with
Stan's NUTS and weigh the pieces by their estimated probability mass:

``per-class``
    The class is what the CVAE was trained on, a one-hot vector. Fixing class c turns
    the decoder into an unconditional one, ``W1 [z; e_c] + b1 = W1[:, :K] z + (b1 +
    W1[:, K + c])``, sampled with ``inpaint.stan`` (C = 0). The pieces are the classes;
    ``p(c | y) ∝ p(y | c)`` (uniform prior). A different model from the blog's.
``partitioned``
    The blog's softmax model itself, exactly: its parameter space is cut into the C
    regions where class c has the largest weight (``inpaint_dominant.stan``), each
    region sampled alone. The pieces' masses add up to the softmax model's evidence,
    so the combination *is* the softmax model's posterior, the one that chains started
    at random report only when they happen to agree. The class posterior reported is
    ``p(dominant class = c | y)``; the mean class weights are reported beside it.

For either, ``p(y, piece c) = ∫ p(y_obs | φ) p(φ) dφ`` over the piece's unconstrained
parameters φ is estimated by importance sampling from a mixture of multivariate t's,
one fitted to each chain's draws; the Pareto k̂ of the weights (PSIS, Vehtari et al.
2024) says whether the estimate can be trusted. A piece can be multimodal itself
(stroke styles), so its chains start at distinct optimisation optima and the mixture
proposal weighs the modes they found by mass, not by how many chains found them.
Imputations are the mixture over pieces of the means within each piece: the chains' draws
where the chains share one mode (R-hat <= 1.1 and the chains' own evidences within 1 nat),
else the self-normalised importance-sampling means, which weigh the chains' modes by mass.
The fits are independent (embarrassingly parallel).

Modules: ``density`` (the pieces' log densities in PyTorch, mirroring the Stan programs),
``evidence`` (multi-start optimisation, Laplace, importance sampling), ``fitting`` (one NUTS fit
per piece, combined by the pieces' masses) and ``output`` (summary, text, files).
"""

from surrogate.tasks.pieces.density import (
           CLASS_MODELS,
           SCREEN,
           Pieces,
           check_class_model,
           dominant_logits,
           fix_class,
           log_joint,
)
from surrogate.tasks.pieces.evidence import laplace_evidence, log_evidence, multistart_optima
from surrogate.tasks.pieces.fitting import PerClassResult, run_per_class
from surrogate.tasks.pieces.output import (
           PIECES,
           PROBABILITY,
           format_per_class,
           inpaint_per_class,
           summarize,
           write_per_class_outputs,
)

__all__ = ["CLASS_MODELS", "PIECES", "PROBABILITY", "SCREEN", "PerClassResult", "Pieces", "check_class_model", "dominant_logits",
           "fix_class", "format_per_class", "inpaint_per_class", "laplace_evidence", "log_evidence", "log_joint",
           "multistart_optima", "run_per_class", "summarize", "write_per_class_outputs"]  # fmt: skip
