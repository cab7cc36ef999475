"""Score-entropy discrete diffusion (SEDD): graphs, noise schedules, the score-entropy loss, the
score-model protocol and the denoiser adapter. The math is in docs/math.md (Score entropy)."""

from edlm.diffusion.sedd.adapter import DenoiserScores
from edlm.diffusion.sedd.graphs import GRAPHS, AbsorbingGraph, Graph, UniformGraph, log_expm1, make_graph
from edlm.diffusion.sedd.loss import dwdse, score_entropy
from edlm.diffusion.sedd.noise import GeometricNoise, LogLinearNoise
from edlm.diffusion.sedd.protocol import is_score_model, log_scores, score_model_parts

__all__ = ["DenoiserScores", "GRAPHS", "AbsorbingGraph", "Graph", "UniformGraph", "log_expm1", "make_graph",
           "dwdse", "score_entropy", "GeometricNoise", "LogLinearNoise", "is_score_model", "log_scores",
           "score_model_parts"]
