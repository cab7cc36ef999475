"""Hugging Face causal LMs as edlm causal LMs (docs/contracts.md, Causal LM).

`HFCausalLM` wraps any `transformers` `AutoModelForCausalLM` so that it works as an AR energy, as
Glauber's `lm` and as the oracle of generative perplexity:

- `vocab_size`: V, the number of rows of the model's output layer (logits are over V ids).
- `token_logprobs(x: Long[B, L]) -> Float[B, L]`: `log p(x_i | x_<i)` in float32 nats. Position 0 is
  conditioned on the model's BOS token (`bos_id`; for GPT-2 that is <|endoftext|>, id 50256): the
  model reads `[BOS, x_0, ..., x_{L-2}]`. `x` is always scored as data: if it already starts with BOS,
  that token is scored too (as `log p(BOS | BOS)`); to condition on a leading BOS of your own instead,
  pass `x[:, 1:]`.
- `new_cache(batch, max_len)` / `next_logits(inputs, cache)`: incremental decoding with the model's
  `past_key_values`, the same protocol as `edlm.models.CausalLM`. The first input on an empty cache
  is BOS, given either as `lm.bos_id` or as edlm's BOS id V (`vocab_size`); both mean the model's BOS.

`lm.tokenizer` is the checkpoint's tokenizer as an edlm tokenizer (`edlm.data.build_tokenizer` with
`hf:ID_OR_PATH`), or None when the checkpoint has none. `check_compatible` refuses an LM whose
vocabulary or special tokens differ from a denoiser's. Model specs `hf:ID_OR_PATH` load through
`edlm.load` (`edlm.loading.specs`). Like edlm's own models, nothing here turns off gradients: wrap
evaluation in `torch.no_grad()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edlm.errors import EdlmError, require

HF_PREFIX = "hf:"
PROBE_TEXT = "The quick brown fox jumps over the lazy dog, 1234 times!\nA second line."
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """A torch dtype from a name ('float32', 'bf16', ...) or a dtype; None stays None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    require(dtype in DTYPES, f"dtype={dtype!r} is unknown; use one of {sorted(DTYPES)}.")
    return DTYPES[dtype]


@dataclass
class HFCache:
    """State of incremental decoding: the model's `past_key_values` (None before the first call),
    the number of positions fed so far and the most the caller asked for."""

    past: Any
    length: int
    max_len: int


class HFCausalLM(nn.Module):
    """An edlm causal LM backed by a `transformers` causal LM (see the module docstring)."""

    def __init__(self, model, tokenizer=None, bos_id: int | None = None,
                 name: str = "") -> None:
        super().__init__()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self._vocab_size = int(model.get_output_embeddings().weight.shape[0])
        if bos_id is None:
            bos_id = model.config.bos_token_id
        require(bos_id is not None, f"the model {self.name!r} defines no BOS token; pass bos_id=ID, the token that "
                "position 0 is conditioned on.")
        require(0 <= bos_id < self._vocab_size, f"bos_id={bos_id} lies outside the model's vocabulary "
                f"[0, {self._vocab_size}); pass a valid token id.")
        self.bos_id = int(bos_id)
        self.max_length = getattr(model.config, "max_position_embeddings", None) or getattr(
            model.config, "n_positions", None)

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def eos_id(self) -> int | None:
        eos = self.model.config.eos_token_id
        if isinstance(eos, (list, tuple)):
            eos = eos[0] if eos else None
        return eos if eos is not None else (self.tokenizer.eos_id if self.tokenizer is not None else None)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @classmethod
    def from_pretrained(cls, id_or_path: str, *, trust_remote_code: bool = False, dtype=None, device=None,
                        bos_id: int | None = None) -> "HFCausalLM":
        """Load a causal LM (and its tokenizer, when the checkpoint has one) from a hub id or a local
        directory. Remote code runs only with `trust_remote_code=True`. dtype: None means float32."""
        from transformers import AutoModelForCausalLM

        try:
            model = AutoModelForCausalLM.from_pretrained(id_or_path, trust_remote_code=trust_remote_code,
                                                         dtype=parse_dtype(dtype) or torch.float32)
        except (OSError, ValueError) as err:
            raise EdlmError(f"could not load a Hugging Face causal LM from {id_or_path!r} ({_first_line(err)}); "
                            "pass a local directory with config.json and weights, or a hub id reachable from "
                            "this machine (add --trust-remote-code only for models that need their own code)."
                            ) from None
        tokenizer = _load_tokenizer(id_or_path)
        lm = cls(model, tokenizer, bos_id=bos_id, name=HF_PREFIX + id_or_path)
        return lm.to(device) if device is not None else lm

    def _check(self, x: torch.Tensor, inputs: int) -> None:
        """Validate x: Long[B, L] that the model reads as `inputs` positions."""
        require(x.dim() == 2, f"x has shape {tuple(x.shape)}; pass a LongTensor of shape [B, L].")
        require(x.numel() == 0 or (int(x.min()) >= 0 and int(x.max()) < self.vocab_size),
                f"x holds ids outside [0, {self.vocab_size}) of {self.name!r}; pass token ids of its vocabulary.")
        require(self.max_length is None or inputs <= self.max_length,
                f"sequence length {inputs} exceeds the {self.max_length} positions of {self.name!r}; "
                "score shorter windows.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: Long[B, L] data ids -> logits Float[B, L, V] of x_i given BOS and x_<i."""
        self._check(x, x.shape[-1])
        x = x.to(self.device)
        inputs = torch.cat([torch.full_like(x[:, :1], self.bos_id), x[:, :-1]], dim=1)
        return self.model(input_ids=inputs, use_cache=False).logits

    def token_logprobs(self, x: torch.Tensor) -> torch.Tensor:
        """x: Long[B, L] -> Float[B, L] log p(x_i | BOS, x_<i) in float32 nats."""
        logp = torch.log_softmax(self.forward(x).float(), dim=-1)
        return logp.gather(-1, x.to(logp.device)[..., None]).squeeze(-1)

    def new_cache(self, batch: int, max_len: int, device=None, dtype=None) -> HFCache:
        """An empty cache for `batch` sequences of up to `max_len` inputs (BOS included).
        device and dtype are accepted for protocol compatibility; the model's own are used."""
        require(self.max_length is None or max_len <= self.max_length,
                f"max_len={max_len} exceeds the {self.max_length} positions of {self.name!r}; "
                "decode shorter sequences.")
        return HFCache(None, 0, max_len)

    def next_logits(self, inputs: torch.Tensor, cache: HFCache) -> torch.Tensor:
        """Feed `inputs`: Long[B, n] (BOS first on an empty cache; id V also means BOS) and return the
        logits Float[B, V] of the next token. The cache grows by n positions."""
        require(cache.length + inputs.shape[1] <= cache.max_len,
                f"decoding past max_len={cache.max_len} of the cache; make the cache larger with new_cache.")
        inputs = torch.where(inputs == self.vocab_size, torch.full_like(inputs, self.bos_id), inputs).to(self.device)
        out = self.model(input_ids=inputs, past_key_values=cache.past, use_cache=True)
        cache.past = out.past_key_values
        cache.length += inputs.shape[1]
        return out.logits[:, -1]

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """x: Long[B, L] -> Float[B, L, D] last-layer hidden states of x (after the model's final norm),
        with BOS prepended to the input and its state dropped, so position i has read BOS, x_<=i."""
        self._check(x, x.shape[-1] + 1)
        x = x.to(self.device)
        inputs = torch.cat([torch.full_like(x[:, :1], self.bos_id), x], dim=1)
        return self.model(input_ids=inputs, output_hidden_states=True, use_cache=False).hidden_states[-1][:, 1:]


def check_compatible(lm, vocab_size: int, *, eos_id: int | None = None, tokenizer=None,
                     what: str = "the denoiser") -> None:
    """Raise EdlmError unless the causal LM `lm` can score sequences of `what` (a model with data
    vocabulary `vocab_size`, end-of-sequence id `eos_id` and, optionally, `tokenizer`).

    Checks: equal vocabulary sizes (so every data id means a token of `lm` and the mask id V is not
    one); equal EOS ids when both define one; and, when both `tokenizer` and `lm.tokenizer` exist,
    identical ids for a probe text (equal sizes alone do not prove the same tokenizer).
    """
    name = getattr(lm, "name", type(lm).__name__)
    require(lm.vocab_size == vocab_size,
            f"the causal LM {name!r} has a vocabulary of {lm.vocab_size} tokens but {what} has {vocab_size}; "
            "use an LM trained with the same tokenizer (e.g. GPT-2's 50257 tokens for owt-gpt2 models).")
    lm_eos = getattr(lm, "eos_id", None)
    require(eos_id is None or lm_eos is None or lm_eos == eos_id,
            f"the causal LM {name!r} ends sequences with token {lm_eos} but {what} uses {eos_id}; "
            "use an LM trained with the same tokenizer and special tokens.")
    lm_tok = getattr(lm, "tokenizer", None)
    if tokenizer is not None and lm_tok is not None:
        ours, theirs = tokenizer.encode(PROBE_TEXT), lm_tok.encode(PROBE_TEXT)
        require(ours == theirs, f"the causal LM {name!r} tokenizes text differently from {what} "
                f"({getattr(tokenizer, 'name', 'its tokenizer')}): {theirs[:6]}... vs {ours[:6]}...; "
                "use an LM trained with the same tokenizer.")


def _load_tokenizer(id_or_path: str):
    """The checkpoint's tokenizer (never with remote code), or None. transformers builds an empty
    tokenizer from a model config alone; one that encodes the probe text to nothing counts as absent."""
    from edlm.data import build_tokenizer

    try:
        tokenizer = build_tokenizer(HF_PREFIX + id_or_path)
    except EdlmError:
        return None
    return tokenizer if tokenizer.encode(PROBE_TEXT) else None


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
