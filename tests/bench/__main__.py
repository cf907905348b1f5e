"""`python -m tests.bench`: run every benchmark and print its table."""

import sys

from tests.bench import fanout, runner_storm

codes = [runner_storm.main(), fanout.main()]
sys.exit(max(codes))
