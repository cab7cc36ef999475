"""Energies for EDLM: the Energy protocol and its implementations (docs/contracts.md, Energy).

`AREnergy(lm, carry_over=False)` turns any causal LM into an energy; `check_compatible` is the
vocabulary / mask-id check every sampler and estimator runs before using an energy.
`TextLM` and `TextAREnergy` use a causal LM of another tokenizer through text (`edlm.energy.text`).
"""

from edlm.energy.ar import AREnergy
from edlm.energy.base import Energy, check_compatible
from edlm.energy.text import TextAREnergy, TextLM
from edlm.models.nce import NCEEnergy

__all__ = ["AREnergy", "Energy", "NCEEnergy", "TextAREnergy", "TextLM", "check_compatible"]
