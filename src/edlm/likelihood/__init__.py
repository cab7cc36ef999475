"""Likelihood of sequences: exact AR NLL, the MDLM NELBO, EDLM's estimators, conditional scores."""

from edlm.likelihood.nelbo import SplitLikelihood, nelbo, split_likelihood
from edlm.likelihood.result import KINDS, NelboResult

__all__ = ["KINDS", "NelboResult", "SplitLikelihood", "nelbo", "split_likelihood"]
