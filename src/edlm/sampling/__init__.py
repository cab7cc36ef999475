"""Samplers: float64 categorical sampling, `edlm.sample` (the MDLM / EDLM sampler for denoisers, SEDD's
for score models), and the autoregressive sampler with a KV cache."""

from edlm.diffusion.sedd.adapter import ScoreDenoiser
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
    (`predictor="analytic"` or `"euler"`), or with an `energy` (absorbing graph only) to the EDLM sampler
    over its denoiser (`edlm.diffusion.sedd.ScoreDenoiser`); a denoiser goes to `edlm.sampling.mdlm.sample`.
    The options and the return value are those of the sampler chosen."""
    if is_score_model(model):
        if options.get("energy") is not None:
            require("predictor" not in options, "predictor= selects a SEDD sampler, but with energy= a score model is "
                    "sampled by the EDLM sampler over its denoiser; drop predictor or energy.")
            return mdlm.sample(ScoreDenoiser(model), num_samples, seq_len, steps, **options)
        options.pop("energy", None)
        sedd.check_options(options)
        return sedd.sample(model, num_samples, seq_len, steps, **options)
    require("predictor" not in options, "predictor= applies to score models only; drop it for a denoiser.")
    return mdlm.sample(model, num_samples, seq_len, steps, **options)


__all__ = ["ar_sample", "draw_rows", "sample_categorical", "top_p_filter", "fixed_tokens",
           "draw_candidates", "importance_resample", "SampleStats", "sample"]
