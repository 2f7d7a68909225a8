"""Read a dataset with DALI as fast as possible; print images/s and MB/s per epoch.

    python3 loop_read.py --data-table imagenette.data_train --rows-fn train.rows [--use-gpu]
    torchrun --nproc_per_node=2 loop_read.py --data-table ... --rows-fn ...   (one shard per rank)
    python3 loop_read.py --reader=file --file-root=ROOT/train [--use-gpu]

Sharded by RANK/WORLD_SIZE (LOCAL_RANK picks the GPU), as torchrun sets them.
"""

import sys

from cassandra_dali import cli

if __name__ == "__main__":
    sys.exit(cli.script_main("read", prog="loop_read.py", description=__doc__.splitlines()[0]))
