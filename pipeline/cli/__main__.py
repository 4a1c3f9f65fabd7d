"""``python -m stakelearn.pipeline.cli``: the ``stakelearn`` command."""

import sys

from stakelearn.pipeline.cli import main

sys.exit(main())
