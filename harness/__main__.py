"""`python -m harness ...`: the entry point of the main job; see harness/cli.py. Harness layer."""

import sys

from harness.cli import main

sys.exit(main())
