"""`python -m tests.bench`: run every benchmark and print its table."""

import sys

from tests.bench import e2e, fanout, filter_cost, runner_storm, startup

codes = [runner_storm.main(), e2e.main(), startup.main(), filter_cost.main(), fanout.main()]
sys.exit(max(codes))
