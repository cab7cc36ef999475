"""Energies across tokenizers: a causal LM with its own tokenizer scores the *text* of a denoiser's
sequences (docs/math.md, Energies across tokenizers) (docs/contracts.md, Energies).

- `TextLM(lm, tokenizer, lm_tokenizer=None, temperature=1.0)`: `sequence_logprobs(x Long[B, L]) ->
  Float64[B]`, `log p_LM(text(x)) / temperature` in nats, where `text(x) = tokenizer.decode(x)` (the
  denoiser's tokenizer) is re-encoded by the LM's tokenizer and scored with position 0 conditioned on
  the LM's BOS. `temperature` T > 0 tempers the LM: the distribution it stands for is `∝ p_LM^(1/T)`.
  It is Glauber's target when the LM's tokenizer is not the proposal's (`edlm.glauber` accepts an
  `lm` with `sequence_logprobs` in place of `token_logprobs`).
- `TextAREnergy(text_lm)`: the AR energy through text,
  `E(x0, xt) = -log p_LM(text(x0)) / T + log mu(x0 | xt)`; the corrected kernel is
  `∝ p_LM(text(x0))^(1/T)` over the x0 that agree with xt. It has no carry-over form: carry-over needs
  the LM's conditional of each masked *denoiser* token, which another tokenizer does not give.

Cost: the texts of a call are deduplicated (identical candidates are scored once; a bounded memo
keeps the scores of the last `memo` distinct texts across calls), sorted by length and packed into
padded forwards of at most `max_tokens` LM tokens each, every batch padded only to its own longest
text (right padding, which a causal LM's earlier positions never read).
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from edlm.errors import require
from edlm.util.device import module_device


class TextLM:
    """A causal LM read through text (see the module docstring). vocab_size: the denoiser tokenizer's."""

    def __init__(self, lm, tokenizer, lm_tokenizer=None, *, temperature: float = 1.0, max_tokens: int = 8192,
                 memo: int = 4096) -> None:
        require(hasattr(lm, "token_logprobs"),
                f"{type(lm).__name__} is not a causal LM; pass an object with token_logprobs(x).")
        lm_tokenizer = lm_tokenizer if lm_tokenizer is not None else getattr(lm, "tokenizer", None)
        require(lm_tokenizer is not None, f"the causal LM {getattr(lm, 'name', type(lm).__name__)!r} has no "
                "tokenizer to read text with; pass lm_tokenizer=.")
        require(tokenizer is not None and hasattr(tokenizer, "decode"),
                "a text-level LM needs the denoiser's tokenizer to decode its ids; pass tokenizer=.")
        require(float(temperature) > 0, f"temperature={temperature} must be > 0 (1 = the LM itself).")
        require(int(max_tokens) >= 1, f"max_tokens={max_tokens} must be >= 1.")
        self.lm, self.tokenizer, self.lm_tokenizer = lm, tokenizer, lm_tokenizer
        self.temperature = float(temperature)
        self.max_tokens, self.memo_size = int(max_tokens), int(memo)
        self.vocab_size = tokenizer.vocab_size
        self.name = f"text:{getattr(lm, 'name', type(lm).__name__)}"
        self._memo: OrderedDict[str, float] = OrderedDict()
        self.forwards = 0  # padded LM forwards run so far
        self.scored = 0  # distinct texts scored by the LM so far

    @torch.no_grad()
    def text_logprobs(self, texts: list[str]) -> torch.Tensor:
        """Float64[n] log p_LM(text) in nats (untempered) of each text; each distinct text is scored once."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if todo:
            self._score(todo)
        out = torch.tensor([self._memo[t] for t in texts], dtype=torch.float64)
        for t in dict.fromkeys(texts):
            self._memo.move_to_end(t)
        while len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
        return out

    def _score(self, texts: list[str]) -> None:
        ids = self.lm_tokenizer.encode_batch(texts)
        limit = getattr(self.lm, "max_length", None)
        longest = max(len(row) for row in ids)
        require(limit is None or longest <= limit, f"a text encodes to {longest} tokens of {self.name!r}, more than "
                f"its {limit} positions; score shorter sequences.")
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        device = module_device(self.lm)
        pad = int(getattr(self.lm, "bos_id", 0) or 0)
        start = 0
        while start < len(order):
            width = max(1, len(ids[order[start]]))
            stop = min(len(order), start + max(1, self.max_tokens // width))
            batch = order[start:stop]
            lengths = torch.tensor([len(ids[i]) for i in batch])
            x = torch.full((len(batch), width), pad, dtype=torch.long)
            for row, i in enumerate(batch):
                x[row, :len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
            if int(lengths.max()) > 0:
                logp = self.lm.token_logprobs(x.to(device)).double().cpu()
                self.forwards += 1
                valid = torch.arange(width)[None, :] < lengths[:, None]
                sums = torch.where(valid, logp, torch.zeros_like(logp)).sum(1)
            else:
                sums = torch.zeros(len(batch), dtype=torch.float64)
            for row, i in enumerate(batch):
                self._memo[texts[i]] = float(sums[row])
            start = stop
        self.scored += len(texts)

    def sequence_logprobs(self, x: torch.Tensor) -> torch.Tensor:
        """x: Long[B, L] ids of the denoiser's tokenizer -> Float64[B] log p_LM(text(x)) / temperature, in nats,
        on x's device."""
        require(x.dim() == 2, f"x has shape {tuple(x.shape)}; pass a LongTensor of shape [B, L].")
        texts = [self.tokenizer.decode(row) for row in x.tolist()]
        return (self.text_logprobs(texts) / self.temperature).to(x.device)

    def __repr__(self) -> str:
        return f"TextLM({self.name!r}, temperature={self.temperature:g})"


class TextAREnergy:
    """`E = -log p_LM(text(x0)) / T + log mu(x0 | xt)` of a `TextLM` (module docstring). Call:
    `energy(x0 Long[B, L], xt Long[B, L], t Float[B], proposal_logp Float64[B]) -> Float64[B]` in nats,
    on the device of `proposal_logp`."""

    unit_partition = False

    def __init__(self, text_lm: TextLM) -> None:
        require(hasattr(text_lm, "sequence_logprobs") and hasattr(text_lm, "vocab_size"),
                f"{type(text_lm).__name__} is not a text-level LM; pass a TextLM.")
        self.lm = text_lm
        self.vocab_size = text_lm.vocab_size
        self.mask_id = text_lm.vocab_size

    def __call__(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor,
                 proposal_logp: torch.Tensor) -> torch.Tensor:
        logp = self.lm.sequence_logprobs(x0).to(device=proposal_logp.device, dtype=torch.float64)
        return -logp + proposal_logp.double()

    def __repr__(self) -> str:
        return f"TextAREnergy({self.lm!r})"
