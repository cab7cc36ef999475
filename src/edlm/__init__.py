"""edlm: energy-based discrete diffusion language models.

Public entry points (DESIGN.md §3): `edlm.nelbo`, `edlm.sample`, `edlm.glauber`, `edlm.energy`.
"""

from edlm.errors import EdlmError
from edlm.eval.likelihood import NelboResult, nelbo

__version__ = "0.1.0"

__all__ = ["EdlmError", "NelboResult", "nelbo", "__version__"]
