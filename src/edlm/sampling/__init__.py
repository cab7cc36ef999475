"""Samplers: float64 categorical sampling, `edlm.sample` (the MDLM / EDLM sampler for denoisers, SEDD's
for score models), and the autoregressive sampler with a KV cache."""

from edlm.diffusion.sedd.protocol import is_score_model
from edlm.errors import require
from edlm.sampling import mdlm, sedd
from edlm.sampling.ar import ar_sample
from edlm.sampling.categorical import draw_rows, sample_categorical, top_p_filter
from edlm.sampling.conditioning import fixed_tokens
from edlm.sampling.importance import draw_candidates, importance_resample
from edlm.sampling.mdlm import SampleStats


def sample(model, num_samples: int, seq_len: int, steps: int, **options):
    """`edlm.sample` (docs/contracts.md): a score model (it has `graph`) goes to `edlm.sampling.sedd.sample`
    (`predictor="analytic"` or `"euler"`), a denoiser to `edlm.sampling.mdlm.sample`; the options and the
    return value are those of the sampler chosen."""
    if is_score_model(model):
        sedd.check_options(options)
        return sedd.sample(model, num_samples, seq_len, steps, **options)
    require("predictor" not in options, "predictor= applies to score models only; drop it for a denoiser.")
    return mdlm.sample(model, num_samples, seq_len, steps, **options)


__all__ = ["ar_sample", "draw_rows", "sample_categorical", "top_p_filter", "fixed_tokens",
           "draw_candidates", "importance_resample", "SampleStats", "sample"]
