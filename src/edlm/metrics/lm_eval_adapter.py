"""lm-evaluation-harness adapter: edlm diffusion and AR models as the lm-eval model `edlm`.

    from edlm.metrics.lm_eval_adapter import EdlmLM, register
    lm = EdlmLM(model=denoiser, tokenizer=tok, num_mc=32)          # any object of the protocols
    lm_eval.simple_evaluate(model=lm, tasks=[...], task_manager=...)
    register(); lm_eval.simple_evaluate(model="edlm", model_args="pretrained=ckpt:runs/x,num_mc=32", ...)

Command line (lm-eval has no plugin hook for models, so this module registers `edlm` and then runs
lm-eval's own CLI with the same arguments):

    python -m edlm.metrics.lm_eval_adapter run --model edlm \\
        --model_args pretrained=ckpt:runs/owt-mdlm,num_mc=32,batch_size=64 --tasks hellaswag,piqa
    python -m edlm.metrics.lm_eval_adapter run --model edlm --model_args pretrained=hf:gpt2 --tasks lambada_openai

The kind is detected from the model: a causal LM (edlm AR checkpoint, `hf:` model) gives exact
log-likelihoods; a denoiser gives the Monte Carlo ELBO of `edlm.likelihood.conditional` (context clamped,
only the continuation masked, `num_mc` antithetic times), and an absorbing SEDD score model (`ckpt:` of
`train.objective=sedd`, `hf:louaaron/sedd-small`) the same estimate of its score-entropy bound. All
define the greedy check there, which is how LAMBADA (`lambada_openai`, accuracy = greedy) is scored: a
diffusion model decodes the masked continuation in one step, each token its position's argmax.

model_args: `pretrained` (a model spec, `edlm.loading.specs`: ckpt:PATH, pretrained:DIR_OR_ID,
bundled:NAME, hf:ID_OR_PATH or a path; a causal LM, a denoiser or a score model), `num_mc` (32), `seed` (0),
`batch_size` (rows per forward pass; "auto" means 64), `device` (auto), `dtype` (hf: only),
`trust_remote_code` (false), `seq_len` (denoisers: pad every request with masks to this length;
default: the checkpoint's data.seq_len, 0 disables), `prefix_eos` (start every request with EOS, as
EOS-wrapped training rows do; default: true for edlm checkpoints whose tokenizer has an EOS).

Tokenization: trailing whitespace of the context moves to the continuation; the continuation's ids
are those of `encode(context + continuation)` after `encode(context)` when that is a prefix of it,
else `encode(continuation)`. Contexts too long for the model are cut from the left.
`loglikelihood_rolling` scores a text in disjoint windows of the model's length (lm-eval's rolling
windows); for a diffusion model the sum is an ELBO, i.e. a lower bound on the log-likelihood in expectation.
`generate_until` is not supported (diffusion sampling is `edlm sample`).
"""

from __future__ import annotations

import sys

from lm_eval.api.model import LM
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from edlm.errors import EdlmError, require
from edlm.likelihood.conditional import causal_scores, diffusion_scores
from edlm.metrics.samples import encode_text
from edlm.models.hf import HFCausalLM
from edlm.util.progress import progress_bar

MODEL_NAME = "edlm"
_NO_TOKEN = -1  # stands for lm-eval's rolling-window prefix token, dropped before scoring


class EdlmLM(LM):
    """An lm-eval `LM` over an edlm denoiser, absorbing score model or causal LM (see the module docstring)."""

    def __init__(self, pretrained: str | None = None, *, model=None, tokenizer=None, num_mc: int = 32,
                 seed: int = 0, batch_size: int | str = 64, device: str | None = "auto", dtype: str | None = None,
                 trust_remote_code: bool = False, seq_len: int | None = None, prefix_eos: bool | None = None,
                 max_batch_size=None, **unused) -> None:
        super().__init__()
        require(not unused, f"unknown model_args {sorted(unused)} for the edlm model; use pretrained, num_mc, seed, "
                "batch_size, device, dtype, trust_remote_code, seq_len, prefix_eos.")
        require((pretrained is None) != (model is None), "pass exactly one of pretrained=SPEC or model=OBJECT.")
        default_len = None
        if pretrained is not None:
            from edlm.loading.specs import load_spec

            loaded = load_spec(str(pretrained), device=device or "auto", dtype=dtype,
                               trust_remote_code=bool(trust_remote_code), role=("denoiser", "score", "causal"),
                               what="model_args pretrained")
            model, tokenizer, default_len = loaded.model, tokenizer or loaded.tokenizer, loaded.seq_len
        require(tokenizer is not None, "the edlm lm-eval model needs a tokenizer; pass tokenizer=... with model=.")
        self.model, self.tokenizer = model, tokenizer
        self.causal = hasattr(model, "token_logprobs")
        self.num_mc, self.seed = int(num_mc), int(seed)
        require(self.num_mc >= 1, f"num_mc={num_mc} must be at least 1.")
        self.batch_size = 64 if batch_size in (None, "auto") or str(batch_size).startswith("auto") else int(batch_size)
        require(self.batch_size >= 1, f"batch_size={batch_size} must be at least 1.")
        if self.causal:
            from edlm.metrics.generative import context_length

            self.max_len = context_length(model)
        else:
            self.max_len = default_len if seq_len is None else (int(seq_len) or None)
        hf = isinstance(model, HFCausalLM)
        eos = getattr(tokenizer, "eos_id", None)
        if prefix_eos is None:
            prefix_eos = eos is not None and not hf
        require(not prefix_eos or eos is not None, "prefix_eos=true needs a tokenizer with an EOS id.")
        self.prefix = [eos] if prefix_eos else []

    def _encode(self, text: str) -> list[int]:
        return encode_text(self.tokenizer, text) if text else []

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        ctx = self._encode(context)
        whole = self._encode(context + continuation)
        cont = whole[len(ctx):] if whole[:len(ctx)] == ctx else self._encode(continuation)
        return ctx, cont

    def score_tokens(self, pairs: list[tuple[list[int], list[int]]]):
        """ConditionalScore (logprob, stderr, greedy) of each (context ids, continuation ids) pair."""
        if self.causal:
            return causal_scores(self.model, pairs, prefix=self.prefix, max_len=self.max_len,
                                 batch_size=self.batch_size)
        return diffusion_scores(self.model, pairs, num_mc=self.num_mc, prefix=self.prefix, seq_len=self.max_len,
                                batch_size=self.batch_size, seed=self.seed)

    def _chunked(self, pairs, desc: str, disable: bool):
        """score_tokens over `pairs` in chunks, with a progress bar."""
        step = max(1, self.batch_size // (1 if self.causal else self.num_mc + 1))
        out = []
        for start in progress_bar(range(0, len(pairs), step), desc=desc, unit="chunk", enabled=not disable):
            out += self.score_tokens(pairs[start:start + step])
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [self._encode_pair(*req.args) for req in requests]
        results = []
        for req, score in zip(requests, self._chunked(pairs, "edlm loglikelihood", disable_tqdm)):
            result = (score.logprob, score.greedy)
            self.cache_hook.add_partial("loglikelihood", req.args, result)
            results.append(result)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        require(self.max_len is not None, "loglikelihood_rolling needs the model's length; pass seq_len=N.")
        width = self.max_len - len(self.prefix)
        pairs, owner = [], []
        for i, req in enumerate(requests):
            for context, continuation in map(make_disjoint_window, get_rolling_token_windows(
                    self._encode(req.args[0]), _NO_TOKEN, width, 1)):
                pairs.append(([t for t in context if t != _NO_TOKEN], continuation))
                owner.append(i)
        totals = [0.0] * len(requests)
        for i, score in zip(owner, self._chunked(pairs, "edlm rolling", disable_tqdm)):
            totals[i] += score.logprob
        for req, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False):
        raise EdlmError("the edlm lm-eval model scores text but does not generate; run loglikelihood or "
                        "multiple-choice tasks, and sample with `edlm sample`.")


def register() -> None:
    """Register `EdlmLM` in lm-eval's model registry as `edlm` (idempotent)."""
    import lm_eval.models  # noqa: F401  (registers lm-eval's own models first, as get_model would)
    from lm_eval.api.registry import register_model

    register_model(MODEL_NAME)(EdlmLM)


def main(argv: list[str] | None = None) -> None:
    """lm-eval's command line with the `edlm` model registered."""
    from lm_eval.__main__ import cli_evaluate

    register()
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    # Import under the module's own name so that the registered class is edlm.metrics.lm_eval_adapter.EdlmLM.
    from edlm.metrics.lm_eval_adapter import main as _main

    _main()
