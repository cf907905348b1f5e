"""`python -m node_runner` is the runner's command line."""

import sys

from node_runner.cli import main

sys.exit(main())
