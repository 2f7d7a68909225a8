"""Write the UUIDs of a metadata table to a rows file for fn.crs4.cassandra(source_uuids_file=...).

    python3 cache_uuids.py --metadata-table=imagenette.metadata_train --rows-fn train.rows

The table is scanned by token ranges (not one giant query); the file is sorted.
"""

import sys

from cassandra_dali import cli

if __name__ == "__main__":
    sys.exit(
        cli.script_main("uuids", prog="cache_uuids.py", description=__doc__.splitlines()[0])
    )
