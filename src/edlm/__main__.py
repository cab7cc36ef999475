"""`python -m edlm` runs the command line."""

import sys

from edlm.cli import main

sys.exit(main())
