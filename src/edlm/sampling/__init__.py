"""Samplers: float64 categorical sampling, the MDLM / EDLM sampler behind `edlm.sample`, and the
autoregressive sampler with a KV cache."""

from edlm.sampling.ar import ar_sample
from edlm.sampling.categorical import draw_rows, sample_categorical, top_p_filter
from edlm.sampling.conditioning import fixed_tokens
from edlm.sampling.importance import draw_candidates, importance_resample
from edlm.sampling.mdlm import SampleStats, sample

__all__ = ["ar_sample", "draw_rows", "sample_categorical", "top_p_filter", "fixed_tokens",
           "draw_candidates", "importance_resample", "SampleStats", "sample"]
