"""What hedged reads cost on a healthy cluster, and how often they fire. One table of random rows
at RF 3 (written at ALL, so every replica a hedge may go to holds every row) on a local 3-node
cluster, read with fn.crs4.cassandra (LOCAL_ONE, token-aware) by two pipelines in one process,
``hedge_reads=True`` and ``hedge_reads=False``, at each added round-trip time (--rtt-ms):

- both pipelines are built and warmed up one epoch, then read in interleaved rounds of one
  epoch's worth of batches each (on, off, then off, on, ...: which goes first alternates, so a
  drift of the machine hits both alike);
- per variant: images/s over all its rounds (total images / total time), the mean ± std of the
  per-round rates, and the ratio on/off;
- from the reader's telemetry over the measured rounds: the reads, the fraction hedged
  (hedges_sent / reads), the hedges the second try won, the driver's aborted speculative
  executions (hedges that answered second; the reader refreshes that count at most once a
  second, so it may lag); and at the end the hedge delay in force, the p50/p99 read latency
  (since the reader started: warm-up included) and the read-ahead depth in batches.

Both read at one fixed read-ahead depth (--depth, 16 batches): the adaptive depth follows each
reader's own history and would differ between them. A pipeline keeps reading ahead while the
other one runs, so a round starts with its depth of batches ready: alike for both variants
(keep --rows well above depth x --batch).

On a healthy cluster every replica is about as fast, so hedging can only cost (a hedged read
is a second read); the fraction hedged says how much it costs at most, the ratio what it does.

RTT is added by bench/delay_proxy.py, one proxy per node: the driver learns the other nodes
from system.peers and connects to each node's own address at the one configured port, so a
proxy in front of one node would carry only that node's reads. The cluster's CQL port is moved
to --native-port P and a proxy listens on each node's address 127.0.0.K at --proxy-port Q,
forwarding to 127.0.0.K:P; the reader is given every node's address and port Q, so each of its
connections goes through a proxy. The bench checks it: at an RTT above 0 it fails if this
process holds a connection to port P, and warns if the p50 latency is below the RTT. At 0 ms
the reader connects to the nodes directly (no proxy, whose own cost is not the subject).

    python bench/hedged_reads.py [--rows 6000] [--rounds 5] [--rtt-ms 0 100] [--json PATH]

Uses the cluster in the cache's servers/bench-cluster (started if it does not run, on the
--native-port and --storage-port, clear of a development cluster's 9042/7000 on the same
addresses; a running one keeps its ports; stopped at the end unless it was running or --keep).
Figures are printed and written, never checked: the exit status is non-zero only on an error.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_server import add_cluster_arguments, machine_cpu, write_random_rows
from cassandra_dali import server, telemetry
from cassandra_dali.sources import cassandra_node
from delay_proxy import DelayProxy
from nvidia.dali import pipeline_def

KEYSPACE = "bench_hedged"
VARIANTS = {"on": True, "off": False}  # variant -> hedge_reads


@contextlib.contextmanager
def bench_cluster(args: argparse.Namespace) -> Iterator[server.ClusterInfo]:
    """bench_server.cluster_for, with ports: a cluster started here gets --native-port and
    --storage-port (another cluster may hold the defaults on the same loopback addresses); one
    with a node running keeps the ports it has."""
    running = [n.status.running for n in server.cluster_status(args.cluster_dir)] \
        if server.is_cluster_dir(args.cluster_dir) else []
    ports = {} if any(running) else {"native_port": args.native_port,
                                     "storage_port": args.storage_port}
    info = server.start_cluster(server.ClusterConfig(dir=args.cluster_dir, nodes=3,
                                                     heap=args.heap, cluster_name="bench",
                                                     **ports))
    was_running = bool(running) and all(running)
    print(f"cluster: {info.contact_point}, storage port {info.storage_port} "
          f"({'already running' if was_running else 'started'})", flush=True)
    try:
        yield info
    finally:
        if not args.keep and not was_running:
            server.stop_cluster(args.cluster_dir)


@contextlib.contextmanager
def route(info: server.ClusterInfo, rtt_ms: float, proxy_port: int
          ) -> Iterator[tuple[list[str], int, str]]:
    """(addresses, port, description) the reader connects to: the nodes themselves at 0 ms,
    else one delay proxy per node on its own address at ``proxy_port``."""
    if rtt_ms == 0:
        yield info.hosts, info.port, "direct"
        return
    if proxy_port == info.port:
        raise SystemExit(f"--proxy-port {proxy_port} is the cluster's CQL port: choose another")
    for address in info.hosts:
        if server.port_in_use(address, proxy_port):
            raise SystemExit(f"{address}:{proxy_port} is in use: choose another --proxy-port")
    proxies: list[DelayProxy] = []
    try:
        for address in info.hosts:
            proxies.append(DelayProxy(address, info.port, rtt_ms, address, proxy_port))
        yield info.hosts, proxy_port, f"through {len(proxies)} delay proxies, one per node"
    finally:
        for proxy in proxies:
            proxy.close()


def peers_of_this_process() -> collections.Counter[str]:
    """The remote ``address:port`` of this process's established TCP connections (from /proc:
    the driver's connections are not visible otherwise)."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    peers: collections.Counter[str] = collections.Counter()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
            address, port = fields[2].split(":")
            ip = ".".join(str(b) for b in reversed(bytes.fromhex(address)))  # little-endian
            peers[f"{ip}:{int(port, 16)}"] += 1
    return peers


def read_round(pipe: Any, batches: int) -> tuple[int, float]:
    """(images, seconds) of ``batches`` runs."""
    images = 0
    started = time.perf_counter()
    for _ in range(batches):
        data, _labels = pipe.run()
        images += len(data)
    return images, time.perf_counter() - started


def measure_rtt(args: argparse.Namespace, info: server.ClusterInfo, ids: list[str],
                rtt_ms: float) -> dict[str, Any]:
    batches = args.rows // args.batch

    @pipeline_def(batch_size=args.batch, num_threads=2, device_id=None, prefetch_queue_depth=2)
    def reader_pipeline(arguments: dict[str, Any], name: str) -> Any:
        return cassandra_node(arguments, name=name)

    with route(info, rtt_ms, args.proxy_port) as (hosts, port, how):
        # Names unique per RTT: the last RTT's readers may not be gone from telemetry yet.
        names = {v: f"hedge-{v}-{rtt_ms:g}ms" for v in VARIANTS}
        # A fixed read-ahead depth, the same for both: the adaptive depth follows each reader's
        # own history (3 batches for one, 47 for the other in a run here), which would measure
        # the depth, not the hedging.
        options = ({} if args.depth == 0 else
                   {"prefetch_buffers": args.depth, "max_prefetch_buffers": args.depth})
        pipes = {}
        for variant, hedge in VARIANTS.items():
            pipes[variant] = reader_pipeline(
                dict(cassandra_ips=hosts, cassandra_port=port, table=f"{KEYSPACE}.data",
                     source_uuids=ids, hedge_reads=hedge, **options), names[variant])
            pipes[variant].build()
        for variant in VARIANTS:  # warm-up: connections, JIT, the read-ahead's depth
            read_round(pipes[variant], batches)
        connections = dict(sorted(peers_of_this_process().items()))
        direct = {p: n for p, n in connections.items() if p.endswith(f":{info.port}")}
        if rtt_ms > 0 and direct:
            raise RuntimeError(f"the readers bypass the delay proxies: connections to {direct}")
        before = {v: telemetry.readers(names[v])[0] for v in VARIANTS}
        rounds: dict[str, list[tuple[int, float]]] = {v: [] for v in VARIANTS}
        busy0, total0 = machine_cpu()
        for r in range(args.rounds):
            order = ["on", "off"] if r % 2 == 0 else ["off", "on"]
            for variant in order:
                rounds[variant].append(read_round(pipes[variant], batches))
        busy1, total1 = machine_cpu()
        after = {v: telemetry.readers(names[v])[0] for v in VARIANTS}
        del pipes
        gc.collect()  # the readers close their sessions before the proxies go

    result: dict[str, Any] = {"rtt_ms": rtt_ms, "route": how, "connections": connections,
                              "batches_per_round": batches,
                              "cores_busy": (busy1 - busy0) / (total1 - total0), "variants": {}}
    for variant in VARIANTS:
        images = sum(n for n, _ in rounds[variant])
        seconds = sum(s for _, s in rounds[variant])
        rates = [n / s for n, s in rounds[variant]]
        first, last = before[variant], after[variant]
        reads = last.reads - first.reads
        hedged = last.hedges_sent - first.hedges_sent
        result["variants"][variant] = {
            "hedge_reads": VARIANTS[variant],
            "images": images, "seconds": seconds, "images_per_s": images / seconds,
            "round_images_per_s": rates,
            "round_mean": statistics.fmean(rates),
            "round_std": statistics.stdev(rates) if len(rates) > 1 else 0.0,
            "reads": reads, "hedges_sent": hedged,
            "hedged_fraction": hedged / reads if reads else 0.0,
            "hedges_won": last.hedges_won - first.hedges_won,
            "driver_hedges_aborted": last.driver_hedges_aborted - first.driver_hedges_aborted,
            "retries": last.retries - first.retries,
            "hedge_delay_ms": last.hedge_delay_seconds * 1e3,
            "latency_p50_ms": last.latency_p50_seconds * 1e3,
            "latency_p99_ms": last.latency_p99_seconds * 1e3,
            "prefetch_depth": last.prefetch_depth,
        }
    on, off = (result["variants"][v] for v in ("on", "off"))
    result["ratio_on_off"] = on["images_per_s"] / off["images_per_s"]
    return result


def print_table(result: dict[str, Any], batch: int) -> None:
    rounds = len(result["variants"]["on"]["round_images_per_s"])
    print(f"\nRTT {result['rtt_ms']:g} ms ({result['route']}): {rounds} rounds of "
          f"{result['batches_per_round']} batches of {batch} per variant, cores "
          f"{result['cores_busy']:.0%} busy")
    print("the readers' connections: " + ", ".join(
        f"{peer} x{count}" for peer, count in result["connections"].items()))
    print(f"{'hedging':<8} {'images/s':>9} {'per round':>17} {'reads':>8} {'hedged':>15} "
          f"{'won':>6} {'aborted':>7} {'retries':>7} {'delay ms':>9} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'depth':>5}")
    for variant, v in result["variants"].items():
        hedged = f"{v['hedges_sent']:,} ({v['hedged_fraction']:.2%})"
        print(f"{variant:<8} {v['images_per_s']:>9,.0f} "
              f"{v['round_mean']:>8,.0f} ± {v['round_std']:<6,.0f} {v['reads']:>8,} {hedged:>15} "
              f"{v['hedges_won']:>6,} {v['driver_hedges_aborted']:>7,} {v['retries']:>7,} "
              f"{v['hedge_delay_ms']:>9.1f} {v['latency_p50_ms']:>7.1f} "
              f"{v['latency_p99_ms']:>7.1f} {v['prefetch_depth']:>5}")
    print(f"on/off: {result['ratio_on_off']:.3f}x images/s", flush=True)
    p50 = min(v["latency_p50_ms"] for v in result["variants"].values())
    if result["rtt_ms"] > 0 and p50 < result["rtt_ms"]:
        print(f"warning: a p50 latency of {p50:.1f} ms is below the {result['rtt_ms']:g} ms "
              "RTT: are the reads going through the proxies?", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--row-bytes", type=int, nargs=2, default=[20_000, 100_000],
                        metavar=("LOW", "HIGH"), help="row sizes drawn in [LOW, HIGH)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="per RTT and variant")
    parser.add_argument("--rtt-ms", type=float, nargs="+", default=[0.0, 100.0])
    parser.add_argument("--depth", type=int, default=16,
                        help="the readers' fixed read-ahead depth in batches, the same for both "
                             "(0: the reader's adaptive depth) (%(default)s)")
    parser.add_argument("--native-port", type=int, default=9142,
                        help="the cluster's CQL port when started here (P)")
    parser.add_argument("--storage-port", type=int, default=7100,
                        help="the cluster's storage port when started here")
    parser.add_argument("--proxy-port", type=int, default=9143,
                        help="where each node's delay proxy listens, on the node's address (Q)")
    add_cluster_arguments(parser)
    parser.add_argument("--json", type=Path, help="write the figures there")
    args = parser.parse_args()
    if args.rows < args.batch or args.rounds < 1:
        parser.error("--rows must be at least --batch, and --rounds at least 1")

    started = time.monotonic()
    figures: dict[str, Any] = {"rows": args.rows, "row_bytes": args.row_bytes, "rf": 3,
                               "write_consistency": "ALL", "read_consistency": "LOCAL_ONE",
                               "batch": args.batch, "rounds": args.rounds,
                               "depth": args.depth, "results": []}
    with bench_cluster(args) as info:
        from cassandra import ConsistencyLevel
        from cassandra.cluster import EXEC_PROFILE_DEFAULT

        session = info.connect()
        try:
            session.get_execution_profile(EXEC_PROFILE_DEFAULT).consistency_level = \
                ConsistencyLevel.ALL
            written = time.monotonic()
            uuids, total = write_random_rows(session, KEYSPACE, args.rows,
                                             tuple(args.row_bytes), replication_factor=3)
        finally:
            session.cluster.shutdown()
        print(f"{args.rows:,} rows ({total / 1e6:,.0f} MB) written at ALL, RF 3, in "
              f"{time.monotonic() - written:.0f} s", flush=True)
        ids = [str(u) for u in uuids]
        for rtt_ms in args.rtt_ms:
            result = measure_rtt(args, info, ids, rtt_ms)
            figures["results"].append(result)
            print_table(result, args.batch)

    print(f"\nsummary (hedging on vs off, {args.rounds} rounds each; "
          f"{time.monotonic() - started:.0f} s in all)")
    print(f"{'RTT ms':>7} {'on/off':>7} {'on img/s':>9} {'off img/s':>9} {'hedged':>8} "
          f"{'won':>6} {'delay ms':>9} {'p50 ms':>7} {'p99 ms':>7}")
    for result in figures["results"]:
        on, off = result["variants"]["on"], result["variants"]["off"]
        print(f"{result['rtt_ms']:>7g} {result['ratio_on_off']:>6.3f}x "
              f"{on['images_per_s']:>9,.0f} {off['images_per_s']:>9,.0f} "
              f"{on['hedged_fraction']:>8.2%} {on['hedges_won']:>6,} "
              f"{on['hedge_delay_ms']:>9.1f} {on['latency_p50_ms']:>7.1f} "
              f"{on['latency_p99_ms']:>7.1f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
