"""edlm: energy-based discrete diffusion language models.

Public entry points (DESIGN.md §3): `edlm.nelbo`, `edlm.sample`, `edlm.glauber`, `edlm.energy`.
"""

from edlm import energy
from edlm.errors import EdlmError
from edlm.likelihood import NelboResult, nelbo
from edlm.sampling import SampleStats, sample
from edlm.sampling.glauber import GlauberStats, glauber

from edlm.version import __version__

__all__ = ["EdlmError", "GlauberStats", "NelboResult", "SampleStats", "energy", "glauber", "nelbo", "sample",
           "__version__"]
