"""edlm: energy-based discrete diffusion language models.

Public entry points (docs/contracts.md): `edlm.nelbo`, `edlm.sample`, `edlm.glauber`, `edlm.glauber_diffusion`,
`edlm.energy`, and `edlm.load(spec)` / `edlm.load_energy(spec, denoiser)`, which load any model spec (`ckpt:PATH`,
`pretrained:DIR_OR_ID`, `bundled:NAME`, `hf:ID_OR_PATH`, a path) or energy spec (`ar:MODEL`,
`coar:MODEL`, `nce:MODEL`); see `edlm.loading.specs` and `edlm.loading.energy_specs`.
"""

from edlm import energy, glauber_diffusion
from edlm.errors import EdlmError
from edlm.likelihood import NelboResult, nelbo
from edlm.loading.energy_specs import load_energy
from edlm.loading.specs import load
from edlm.sampling import SampleStats, sample
from edlm.sampling.glauber import GlauberStats, glauber

from edlm.version import __version__

__all__ = ["EdlmError", "GlauberStats", "NelboResult", "SampleStats", "energy", "glauber", "glauber_diffusion", "load",
           "load_energy", "nelbo", "sample", "__version__"]
