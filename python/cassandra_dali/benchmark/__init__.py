"""Measuring the readers: :mod:`.readloop` reads a dataset through ``fn.crs4.cassandra`` or
DALI's ``fn.readers.file`` as fast as it comes and reports images/s and MB/s (``cassandra-dali
data read``, ``loop_read.py``, the demo and ``bench/`` run it). A tool: it builds on the
library (``sources``, ``sharding``, ``telemetry``), which never imports it."""
