"""Loss and gradient weightings, one small class per file, registered by lowercase name.

``names()`` lists them, ``info(name)`` gives a method's declaration (:class:`~mtl.registry.MethodInfo`:
label, paper, what it ``needs``, modes, batches per step, state; found by name, label or alias in
any case; the book's "Methods" page is generated from it), ``create(name, **hparams)`` builds one,
``aggregate(name, J, losses)`` gives the direction a method takes for a Jacobian J [T, d] from a
fresh state. The training loop only calls the :class:`~mtl.weighting.base.Weighting` contract
(``backward``, ``after_step``, ``end_epoch``, ``reset``, ``parameters``); it never looks at a
method's name.

Kinds, by ``info(name).needs``: loss weightings (:class:`LossWeighting`), gradient weightings
(:class:`GradientWeighting`, "param" or "rep" mode, from the Gramian, a factored Jacobian or J
itself) and custom ones (bilevel methods that draw a validation batch, three-batch methods, wrappers).
Solvers: MGDA, UPGrad and DualProj use scipy's NNLS (exact active-set), CAGrad scipy SLSQP, FairGrad scipy
``least_squares`` (as the official code), Nash-MTL and FORUM cvxpy with Clarabel (optional
dependency ``mtl-imbalance[solvers]``; missing → ImportError at construction).
"""
from __future__ import annotations

from ._registry import WEIGHTINGS, aggregate, create, info, label, names, parallel_table, register  # noqa: F401
from .base import LossWeighting, StepContext, Weighting  # noqa: E402
from .gradient import GradientWeighting  # noqa: E402
from . import ew, ls  # noqa: E402,F401  (registration)
from . import uw, dwa, gls, rlw, stch, famo, si_ls, imtl_l  # noqa: E402,F401  (loss weightings)
from . import autolambda, forum, moml  # noqa: E402,F401  (bilevel)
from . import (gradnorm, mgda, imtl, alignedmtl, graddrop, pcgrad, gradvac, cagrad, nashmtl,  # noqa: E402,F401
               moco, dbmtl, excessmtl, fairgrad, modo, sdmgrad, upgrad, avgnorm, imtl_g, dualproj, config, krum,
               trimmedmean)
from . import consmtl, url  # noqa: E402,F401  (ConsMTL/ULO bilevel heads; URL wraps a base weighting)

__all__ = ["names", "info", "label", "create", "aggregate", "register", "parallel_table",
           "WEIGHTINGS", "MethodInfo", "Weighting",
           "LossWeighting", "GradientWeighting", "StepContext"]
