"""``python -m snnlab`` (and ``torchrun -m snnlab``) runs the CLI."""

import sys

from snnlab.cli import main

sys.exit(main())
