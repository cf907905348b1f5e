"""`python -m kubectl_gadget` is the `kubectl gadget` command line."""

import sys

from kubectl_gadget.cli import main

sys.exit(main())
