"""The text8 benchmark (EDLM's Table 1 and Figure 1 at CPU scale): `edlm eval text8` with its results
under benchmarks/results/text8.{json,md} and text8-*.png. Every option of `edlm eval text8 --help`
applies; for example, two processes sharing the work, then the report:

  python benchmarks/text8.py --threads 1 --shard 0/2 & python benchmarks/text8.py --threads 1 --shard 1/2; wait
  python benchmarks/text8.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from edlm.cli import main

RESULTS = Path(__file__).resolve().parent / "results" / "text8"

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(["eval", "text8", *args] if "--out" in args else ["eval", "text8", "--out", str(RESULTS), *args]))
