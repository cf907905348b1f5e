"""`python -m tests.bench`: run every benchmark and print its table."""

import sys

from tests.bench import runner_storm

sys.exit(runner_storm.main())
