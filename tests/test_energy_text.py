"""Energies across tokenizers (edlm.energy.text) against exact answers in a toy world of strings.

The toy distribution p lives on the 27 strings of length 3 over "abc". The denoiser spells a string
with one id per character; the LM spells it with its own tokenizer, which merges "ab" into one token,
so strings take 2 or 3 LM tokens (and batches need padding). The LM's exact conditionals over its
tokens give log p(string) when summed, so the text-level energy must equal the token-level AR energy
of the character model and the samplers must follow the same law.
"""

import pytest
import torch

import edlm
from edlm.energy import AREnergy, TextAREnergy, TextLM
from edlm.sampling.glauber import glauber
from edlm.toy import ExactCausalLM, ExactDenoiser, FactorisedDenoiser, ToyDistribution

ALPHABET = "abc"
N = 4000
FLOOR = 1.75  # TV <= 1.75 * E[TV of N exact draws] (as in test_sampling_importance.py)


class CharIds:
    """The denoiser's tokenizer: id i is ALPHABET[i]."""

    name, vocab_size, eos_id = "toy-chars", 3, None

    def decode(self, ids):
        return "".join(ALPHABET[i] for i in ids)


class MergingTokenizer:
    """The LM's tokenizer: tokens a, b, c, ab (ids 0..3); "ab" is always merged, left to right."""

    name, vocab_size, eos_id = "toy-merging", 4, None
    tokens = ["a", "b", "c", "ab"]

    def encode(self, text):
        ids, i = [], 0
        while i < len(text):
            if text[i:i + 2] == "ab":
                ids.append(3)
                i += 2
            else:
                ids.append(ALPHABET.index(text[i]))
                i += 1
        return ids

    def encode_batch(self, texts):
        return [self.encode(t) for t in texts]


class StringLM:
    """Exact causal LM over MergingTokenizer's tokens: p(tok_i | tok_<i) = Q(tok_<=i) / Q(tok_<i), where
    Q(prefix) is the mass of the strings whose encoding starts with `prefix`. bos_id 4 pads (never data)."""

    def __init__(self, dist: ToyDistribution):
        tok = MergingTokenizer()
        self.encodings = [tok.encode(CharIds().decode(s.tolist())) for s in dist.sequences]
        self.probs = dist.probs
        self.vocab_size, self.bos_id, self.tokenizer = 5, 4, tok
        self.rows = []  # rows of every token_logprobs call

    def _mass(self, prefix):
        return sum(float(p) for enc, p in zip(self.encodings, self.probs) if enc[:len(prefix)] == prefix)

    def token_logprobs(self, x):
        self.rows.append(tuple(x.shape))
        out = torch.empty(x.shape, dtype=torch.float64)
        for r, row in enumerate(x.tolist()):
            masses = [self._mass(row[:i]) for i in range(len(row) + 1)]
            for i in range(len(row)):
                out[r, i] = torch.tensor(masses[i + 1]).log() - torch.tensor(masses[i]).log()
        return out


@pytest.fixture(scope="module")
def toy():
    return ToyDistribution.random(3, 3, torch.Generator().manual_seed(0))


@pytest.fixture()
def text_lm(toy):
    return TextLM(StringLM(toy), CharIds(), max_tokens=6)


def test_text_level_energy_equals_the_token_level_energy(toy, text_lm):
    x0 = toy.sequences
    logp = torch.randn(len(x0), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    t = torch.ones(len(x0))
    text = TextAREnergy(text_lm)(x0, x0, t, logp)
    token = AREnergy(ExactCausalLM(toy))(x0, x0, t, logp)
    assert text.dtype == torch.float64
    assert torch.allclose(text, token, atol=1e-5)  # ExactCausalLM is float32
    assert torch.allclose(text, toy.nll(x0) + logp, atol=1e-12)


def test_candidates_are_deduplicated_padded_per_batch_and_memoised(toy, text_lm):
    lm = text_lm.lm
    x = toy.sequences[[0, 1, 0, 1, 0]]  # "aaa" (3 LM tokens) and "aab" (a, ab: 2 tokens), repeated
    first = text_lm.sequence_logprobs(x)
    assert torch.equal(first[[0, 2, 4]], first[[0, 0, 0]]) and text_lm.scored == 2
    assert lm.rows == [(2, 3)]  # one forward: 2 distinct texts, padded to the longer one
    again = text_lm.sequence_logprobs(x)
    assert torch.equal(again, first) and lm.rows == [(2, 3)]  # the memo answers repeated texts
    text_lm.sequence_logprobs(toy.sequences)  # 25 new texts, max_tokens=6: batches of <= 2 rows of 3 tokens
    assert all(rows * width <= 6 for rows, width in lm.rows)
    assert any(width == 2 for _, width in lm.rows)  # a batch of 2-token texts is not padded to 3


def test_temperature_tempers_the_lm(toy):
    x0 = toy.sequences
    hot = TextLM(StringLM(toy), CharIds(), temperature=2.0).sequence_logprobs(x0)
    assert torch.allclose(hot, -toy.nll(x0) / 2, atol=1e-12)
    with pytest.raises(edlm.EdlmError, match="temperature=0"):
        TextLM(StringLM(toy), CharIds(), temperature=0)


def test_importance_sampled_law_is_the_token_level_one(toy, text_lm):
    """Same proposal, same random numbers: the text-level energy gives the token-level energy's samples,
    and both reach the toy law (the corrected kernel is the exact posterior for large k)."""
    proposal = FactorisedDenoiser(toy)
    runs = {}
    for name, energy in (("text", TextAREnergy(text_lm)), ("token", AREnergy(ExactCausalLM(toy)))):
        runs[name] = edlm.sample(proposal, N, 3, 3, energy=energy, k=64, window=1.0,
                                 generator=torch.Generator().manual_seed(2))
    assert float((runs["text"] == runs["token"]).all(1).double().mean()) > 0.999
    assert toy.tv(runs["text"]) <= FLOOR * toy.expected_tv(N)


def test_glauber_with_a_text_level_target(toy, text_lm):
    """Glauber's MH test through text equals the token-level one from the same start; a text-level
    target without init starts from the proposal's MDLM samples (seq_len steps, the same random numbers)."""
    init = toy.sample(N, torch.Generator().manual_seed(3))
    proposal = FactorisedDenoiser(toy, torch.zeros(3, 3))  # uniform: the filter does the work
    chains = {}
    for name, lm in (("text", text_lm), ("token", ExactCausalLM(toy))):
        chains[name], stats = glauber(lm, proposal, N, 3, 2, init=init, generator=torch.Generator().manual_seed(4),
                                      return_stats=True)
    assert float((chains["text"] == chains["token"]).all(1).double().mean()) > 0.999
    assert toy.tv(chains["text"]) <= FLOOR * toy.expected_tv(N)
    x, stats = glauber(text_lm, ExactDenoiser(toy), N, 3, 0, generator=torch.Generator().manual_seed(5),
                       return_stats=True)
    assert torch.equal(x, edlm.sample(ExactDenoiser(toy), N, 3, 3, generator=torch.Generator().manual_seed(5)))
    assert stats.count("infill")[0] == 3 and stats.count("ar_step")[0] == 0  # 3 MDLM steps, no causal start
    assert torch.allclose(stats.energy[:, 0], toy.nll(x), atol=1e-12)
