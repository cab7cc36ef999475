"""Autoregressive sampling with a KV cache (temperature, top-p), for AR baselines and Glauber's
causal initialisation.

Incremental-decoding protocol the LM must follow (edlm's `CausalLM` does):
- `lm.vocab_size` (V) and `lm.bos_id`, the id fed before the first token;
- `lm.new_cache(batch, max_len)` -> an opaque cache for `batch` sequences of up to `max_len` inputs;
- `lm.next_logits(inputs: Long[B, n], cache) -> Float[B, V]`: appends `n` input ids to the cache
  (the first call on an empty cache starts with BOS) and returns the logits of the next token,
  i.e. of position `cache length after the call`, given everything fed so far.
A sequence of length L needs L inputs (BOS, x_0, ..., x_{L-2}), so the cache is built with max_len = L.
"""

from __future__ import annotations

import torch

from edlm.errors import require
from edlm.sampling.categorical import sample_categorical, top_p_filter
from edlm.sampling.conditioning import fixed_tokens
from edlm.util.device import module_device
from edlm.util.progress import progress_bar


@torch.no_grad()
def ar_sample(lm, num_samples: int, seq_len: int, *, temperature: float = 1.0, top_p: float = 1.0,
              prefix=None, generator: torch.Generator | None = None, batch_size: int | None = None,
              progress: bool = False) -> torch.Tensor:
    """Sample Long[num_samples, seq_len] from a causal LM, one token at a time with its KV cache.

    temperature > 0 divides the logits; top_p in (0, 1] keeps the smallest most-probable set of
    tokens with that much probability. prefix: Long[P] or Long[num_samples, P] fixed first tokens.
    Draws are float64 exponential races from `generator` (see `edlm.sampling.categorical`).
    """
    require(isinstance(num_samples, int) and num_samples >= 1, f"num_samples={num_samples} must be an integer >= 1.")
    require(isinstance(seq_len, int) and seq_len >= 1, f"seq_len={seq_len} must be an integer >= 1.")
    require(temperature > 0, f"temperature={temperature} must be positive.")
    require(0 < top_p <= 1, f"top_p={top_p} must lie in (0, 1].")
    require(batch_size is None or (isinstance(batch_size, int) and batch_size >= 1),
            f"batch_size={batch_size} must be None or an integer >= 1.")
    for name in ("vocab_size", "bos_id", "new_cache", "next_logits"):
        require(hasattr(lm, name), f"{type(lm).__name__} has no {name}; AR sampling needs an LM with "
                "vocab_size, bos_id, new_cache(batch, max_len) and next_logits(inputs, cache).")
    device = module_device(lm)
    fixed = fixed_tokens(num_samples, seq_len, lm.vocab_size, prefix).to(device)
    length = 0 if prefix is None else int(torch.as_tensor(prefix).shape[-1])
    out = []
    chunk = batch_size or num_samples
    with progress_bar(total=num_samples * (seq_len - length), enabled=progress, desc="ar-sample",
                      unit="tok") as bar:
        for start in range(0, num_samples, chunk):
            x = fixed[start:start + chunk].clone()
            b = x.shape[0]
            if length == seq_len:
                out.append(x)
                continue
            cache = lm.new_cache(b, seq_len)
            inputs = torch.cat([torch.full((b, 1), lm.bos_id, dtype=torch.long, device=device), x[:, :length]], 1)
            logits = lm.next_logits(inputs, cache)
            for i in range(length, seq_len):
                x[:, i] = sample_categorical(top_p_filter(logits.double() / temperature, top_p), generator)
                bar.update(b)
                if i + 1 < seq_len:
                    logits = lm.next_logits(x[:, i:i + 1], cache)
            out.append(x)
    return torch.cat(out)
