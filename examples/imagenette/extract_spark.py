"""Store one split of an image-folder dataset in Cassandra with Spark (one session per partition).

    spark-submit --master local[2] --conf spark.default.parallelism=10 \
        --py-files extract_common.py extract_spark.py ROOT --split-subdir=train \
        --data-table imagenette.data_train --metadata-table imagenette.metadata_train

The driver lists the files; each partition reads its files and writes them exactly as
extract_serial.py does, so both give the same rows. Workers must see ROOT at the same path.
"""

from cassandra_dali import spark_ingest
from extract_common import main, parse_args

if __name__ == "__main__":
    main(
        spark_ingest.run,
        parse_args("extract_spark.py", __doc__.splitlines()[0], extra=spark_ingest.add_arguments),
        "extract_spark.py",
    )
