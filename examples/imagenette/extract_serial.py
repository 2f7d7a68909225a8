"""Store one split of an image-folder dataset in Cassandra, from one process.

    python3 extract_serial.py ROOT --split-subdir=train \
        --data-table imagenette.data_train --metadata-table imagenette.metadata_train

ROOT/SPLIT/CLASS/FILE: class folders (sorted) give the integer labels. Ids are derived from
"split/class/file", so running it again rewrites the same rows. See --help and README.md.
"""

import sys

from cassandra_dali import cli

if __name__ == "__main__":
    sys.exit(
        cli.script_main("ingest", prog="extract_serial.py", description=__doc__.splitlines()[0])
    )
