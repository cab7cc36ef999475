"""Score-entropy discrete diffusion (SEDD): graphs, noise schedules, the score-entropy loss, the
score-model protocol and the adapters between denoisers and absorbing score models. The math is in
docs/math.md (Score entropy)."""

from edlm.diffusion.sedd.adapter import DenoiserScores, ScoreDenoiser
from edlm.diffusion.sedd.graphs import GRAPHS, AbsorbingGraph, Graph, UniformGraph, make_graph
from edlm.diffusion.sedd.loss import dwdse, score_entropy, training_score_entropy
from edlm.diffusion.sedd.noise import NOISES, GeometricNoise, LogLinearNoise, make_noise
from edlm.diffusion.sedd.protocol import is_score_model, log_scores, score_model_parts
from edlm.util.numerics import log_expm1

__all__ = ["DenoiserScores", "ScoreDenoiser", "GRAPHS", "AbsorbingGraph", "Graph", "UniformGraph", "log_expm1",
           "make_graph", "dwdse", "score_entropy", "training_score_entropy", "NOISES", "GeometricNoise",
           "LogLinearNoise", "make_noise", "is_score_model", "log_scores", "score_model_parts"]
