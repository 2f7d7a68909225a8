"""The Spark ingest (``extract_spark.py``): the serial ingest's writes, spread over partitions.

The driver lists the split (so labels and ids are decided once, exactly as the serial ingest
decides them), drops what is already stored when ``--skip-existing`` is given, and parallelises
the list; each partition opens its own Cassandra session and runs
:func:`cassandra_dali.dataset.ingest.write_samples` on its files. Workers read the files by path, so
ROOT must be at the same path on every worker (one machine, or a shared file system).

Executors run ``spark.pyspark.python``, by default the driver's own interpreter here (the one
that has cassandra_dali), unless PYSPARK_PYTHON or that setting says otherwise.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import ingest

log = logging.getLogger(__name__)


def spark_session(app_name: str) -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise ingest.IngestError(
            f"pyspark is not installed ({error}): pip install pyspark, or use extract_serial.py"
        ) from None
    builder = SparkSession.builder.appName(app_name)
    if not os.environ.get("PYSPARK_PYTHON"):
        # Else executors start `python3` from PATH, which may lack cassandra_dali.
        builder = builder.config("spark.pyspark.python", sys.executable)
    spark = builder.getOrCreate()
    # Spark's INFO lines would bury the ingest's own messages; its warnings and errors stay.
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _partition_error(text: str) -> str | None:
    marker = "IngestError: "
    for line in text.splitlines():
        if marker in line:
            return line.split(marker, 1)[1].strip()
    return None


def ingest_split(root: Path | str, split_subdir: str, config: ingest.IngestConfig, *,
                 partitions: int | None = None) -> ingest.IngestSummary:
    """What :func:`cassandra_dali.dataset.ingest.ingest_split` does, with the writes spread
    over ``partitions`` Spark tasks (default: ``spark.default.parallelism``)."""
    listing = ingest.list_split(root, split_subdir)
    ingest.handle_listing_problems(listing, config.on_error)
    samples = list(listing.samples)
    existing = 0
    if config.skip_existing:
        session = config.connection.connect()
        try:
            stored = ingest.existing_ids(session, config.metadata_table)
        finally:
            session.cluster.shutdown()
        samples = [s for s in samples if s.id not in stored]
        existing = len(listing.samples) - len(samples)
        log.info("%d samples are already in %s: they are skipped", existing, config.metadata_table)

    spark = spark_session(f"cassandra-dali ingest {listing.split}")
    try:
        context = spark.sparkContext
        partitions = max(1, min(partitions or context.defaultParallelism, len(samples) or 1))
        log.info(
            "%s: %d files in %d classes -> %s, %s (Cassandra at %s), %d partitions on %s",
            root,
            len(listing.samples),
            len(listing.classes),
            config.data_table,
            config.metadata_table,
            config.connection.contact_point,
            partitions,
            context.master,
        )
        started = time.monotonic()
        summaries = (
            context.parallelize(samples, partitions)
            .mapPartitions(functools.partial(ingest.write_partition, config=config))
            .collect()
        )
        elapsed = time.monotonic() - started
    except Exception as error:
        # A partition's IngestError reaches the driver inside a long Java stack trace: give
        # the user its own one-line message (the trace is in Spark's log above).
        message = _partition_error(str(error))
        if message is None:
            raise
        raise ingest.IngestError(message) from None
    finally:
        spark.stop()

    summary = ingest.IngestSummary()
    for part in summaries:
        summary = summary.merge(part)
    summary.files = len(listing.samples)
    summary.existing += existing
    summary.seconds = elapsed  # wall time of the job, not of the slowest partition alone
    summary.skipped = list(listing.problems) + summary.skipped
    return summary
