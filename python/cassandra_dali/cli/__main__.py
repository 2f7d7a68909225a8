"""``python -m cassandra_dali.cli``: the ``cassandra-dali`` command."""

import sys

from . import main

sys.exit(main())
