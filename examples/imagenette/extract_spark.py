"""Store one split of an image-folder dataset in Cassandra with Spark (one session per partition).

    spark-submit --master local[2] --conf spark.default.parallelism=10 \
        extract_spark.py ROOT --split-subdir=train \
        --data-table imagenette.data_train --metadata-table imagenette.metadata_train

The driver lists the files; each partition reads its files and writes them exactly as
extract_serial.py does, so both give the same rows. Workers must see ROOT at the same path.
Run spark-submit with the Python that has cassandra_dali (PYSPARK_PYTHON, or an active venv).
"""

import sys

try:
    from cassandra_dali import cli
except ImportError as error:  # e.g. spark-submit running the system python3
    sys.exit(
        f"cannot import cassandra_dali ({error}): run with the Python of the environment where "
        "it is installed (activate it, or export PYSPARK_PYTHON=/path/to/.venv/bin/python)"
    )

if __name__ == "__main__":
    sys.exit(
        cli.script_main("ingest-spark", prog="extract_spark.py",
                        description=__doc__.splitlines()[0])
    )
