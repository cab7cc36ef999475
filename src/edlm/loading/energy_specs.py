"""Energy specs: the one resolver of every string that names an EDLM energy (`edlm.load_energy`, the
`--energy` options of `edlm sample`, `edlm demo` and `edlm eval latency`, and `edlm eval energy`).

- `ar:MODEL`: the AR energy of a causal LM, `E = -log p_AR(x0) + log mu(x0 | xt)` (`AREnergy`).
- `coar:MODEL`: the carry-over AR energy of a causal LM: only masked positions count, so Z(xt) = 1
  (`AREnergy(lm, carry_over=True)`).
- `nce:MODEL`: an NCE energy network (`edlm train ... train.objective=nce`, or its export), e.g.
  `nce:bundled:text8-small-nce`.

MODEL is any model spec (`edlm.loading.specs`) whose role fits: a causal LM for ar:/coar:, an NCE
energy for nce:. Given the denoiser it corrects (and that denoiser's tokenizer and sequence length),
the energy is checked before any work: the same vocabulary and mask id (`edlm.energy.check_compatible`),
the same tokenizer when both are known (ids of a probe text, EOS id), and a context of at least
`seq_len` tokens.

Across tokenizers: when both tokenizers are known and differ, `ar:MODEL` is the text-level AR energy
(`edlm.energy.TextAREnergy`: each candidate is decoded by the denoiser's tokenizer, re-encoded by the
LM's and scored as text) and `LoadedEnergy.lm` is the `TextLM` that Glauber takes as its target;
`temperature` T tempers that LM (`p_LM^(1/T)`). `coar:MODEL` has no text-level form and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from edlm.energy import AREnergy, TextAREnergy, TextLM, check_compatible
from edlm.errors import require
from edlm.loading.specs import ROLE_WORDS, LoadedModel, check_seq_len, load_spec
from edlm.loading.tokenizer_specs import same_tokenizer, tokenizer_label

ENERGY_ROLES = {"ar": "causal", "coar": "causal", "nce": "nce"}
ENERGY_FORMS = "ar:MODEL, coar:MODEL or nce:MODEL"


@dataclass
class LoadedEnergy:
    """An energy from a spec. lm: the causal LM of an ar:/coar: energy (a `TextLM` across tokenizers; None
    for nce:); model: what MODEL loaded as (its tokenizer, config, directory, ...); kind: ar, coar or nce."""

    energy: object
    lm: object | None
    spec: str
    model: LoadedModel

    @property
    def kind(self) -> str:
        return self.spec.partition(":")[0]


def parse_energy_spec(spec, what: str = "energy spec") -> tuple[str, str]:
    """(kind, model spec) of an energy spec, without loading anything; EdlmError with one sentence
    for an unknown prefix or an empty model."""
    text = str(spec)
    kind, colon, model = text.partition(":")
    require(bool(colon) and kind in ENERGY_ROLES,
            f"{what} {text!r} is not an energy spec; use {ENERGY_FORMS} (MODEL: a model spec such as "
            "bundled:text8-small-ar).")
    require(bool(model.strip()), f"{what} {text!r} names no model; write {kind}:MODEL.")
    return kind, model


def load_energy_spec(spec, *, denoiser=None, tokenizer=None, seq_len: int | None = None, device="auto",
                     trust_remote_code: bool = False, ema: bool = True, dtype=None, temperature: float = 1.0,
                     what: str = "energy spec") -> LoadedEnergy:
    """Load the energy a spec names (see the module docstring) onto `device`, in eval mode.

    denoiser: the masked diffusion model the energy corrects (None: no compatibility check);
    tokenizer: the denoiser's tokenizer (None: not compared; a known one that differs from the LM's
    makes ar: text-level); seq_len: the sequence length the energy must take (None: not checked);
    dtype: the model's parameter dtype (see `load_spec`); temperature: the text-level LM's temperature
    (text-level energies only). `what` names the value in messages (e.g. "--energy").
    """
    spec = str(spec)
    kind, model_spec = parse_energy_spec(spec, what)
    loaded = load_spec(model_spec, device=device, dtype=dtype, trust_remote_code=trust_remote_code, ema=ema,
                       what=f"the model of {what}")
    role = ENERGY_ROLES[kind]
    require(loaded.role == role, f"{what} {spec!r} needs {ROLE_WORDS[role]}, but {model_spec!r} is "
            f"{ROLE_WORDS[loaded.role]}; pass ar:/coar: a causal LM and nce: an NCE energy.")
    lm = loaded.model if role == "causal" else None
    difference = same_tokenizer(tokenizer, loaded.tokenizer) if lm is not None else None
    if difference is not None:
        require(kind == "ar", f"{what} {spec!r} cannot be carry-over across tokenizers (its LM's tokenizer "
                f"{tokenizer_label(loaded.tokenizer)} differs from the denoiser's {tokenizer_label(tokenizer)}); use "
                f"ar:{model_spec}, the text-level AR energy, or an LM of the denoiser's tokenizer.")
        lm = TextLM(loaded.model, tokenizer, loaded.tokenizer, temperature=temperature)
        energy = TextAREnergy(lm)
    else:
        require(temperature == 1.0, f"temperature={temperature} applies to text-level energies only, and {what} "
                f"{spec!r} shares the denoiser's tokenizer; drop it (the importance weights' tau tempers any energy).")
        energy = AREnergy(lm, carry_over=kind == "coar") if lm is not None else loaded.model
    result = LoadedEnergy(energy, lm, spec, loaded)
    check_energy(result, denoiser, tokenizer=tokenizer, seq_len=seq_len, what=what)
    return result


def check_energy(loaded: LoadedEnergy, denoiser=None, *, tokenizer=None, seq_len: int | None = None,
                 what: str = "energy spec") -> None:
    """EdlmError (one sentence) unless the energy fits `denoiser` (vocabulary, mask id; skipped for
    None), its `tokenizer` (when both are known) and sequences of `seq_len` tokens (skipped for None)."""
    if denoiser is not None:
        vocab = getattr(loaded.energy, "vocab_size", None)
        require(vocab is None or vocab == denoiser.vocab_size,
                f"{what} {loaded.spec!r} has vocab_size={vocab} but the denoiser has vocab_size={denoiser.vocab_size}; "
                "use an energy built on the denoiser's tokenizer.")
        check_compatible(denoiser, loaded.energy)  # the mask id too
    if isinstance(loaded.energy, TextAREnergy):  # text-level: tokenizers differ by design, lengths are checked per text
        return
    theirs = loaded.model.tokenizer
    difference = same_tokenizer(tokenizer, theirs)
    require(difference is None, f"the tokenizer {tokenizer_label(theirs)} of {what} {loaded.spec!r} differs from "
            f"the denoiser's {tokenizer_label(tokenizer)}: {difference}; use models that share one tokenizer.")
    lm_eos, our_eos = getattr(loaded.lm, "eos_id", None), getattr(tokenizer, "eos_id", None)
    require(lm_eos is None or our_eos is None or lm_eos == our_eos,
            f"{what} {loaded.spec!r} ends sequences with token {lm_eos} but the denoiser's tokenizer uses {our_eos}; "
            "use models that share one tokenizer and special tokens.")
    if seq_len is not None:
        check_seq_len(seq_len, loaded.model.model, f"{what} model")


def load_energy(spec, denoiser=None, **kwargs):
    """The energy an energy spec names (`edlm.load_energy`): see `load_energy_spec` for the keywords."""
    return load_energy_spec(spec, denoiser=denoiser, **kwargs).energy
