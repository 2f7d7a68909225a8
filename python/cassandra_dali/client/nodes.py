"""What each node of a running cluster says about itself, asked through a session that talks to
that node alone (until the ring has settled, each node's view differs): whether every node is a
member of the ring in each one's gossip, and how many reads of a table it coordinated and
served. The launcher waits on the first; the cluster tests and benches check routing with the
second."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cluster import make_cluster, quiet_driver
from .connection import Connection

if TYPE_CHECKING:
    from cassandra.cluster import Cluster

# Per peer address, as one node sees it: (gossip status with port, the peer's generation).
GossipView = dict[str, tuple[str, int | None]]


def single_node_cluster(address: str, port: int) -> Cluster:
    """A driver cluster that talks to ``address`` only (its view of the ring is what counts)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([address]),
                               request_timeout=10)
    return make_cluster(address, port, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                        connect_timeout=5, control_connection_timeout=5)


def gossip_view(address: str, port: int) -> GossipView:
    """The ring as the node at ``address`` gossips it (itself included)."""
    from cassandra import InvalidRequest

    cluster = single_node_cluster(address, port)
    try:
        with quiet_driver():
            session = cluster.connect()
            try:
                rows = session.execute(
                    "SELECT address, status_with_port, generation FROM system_views.gossip_info",
                    timeout=10)
                return {str(r.address): (r.status_with_port or "", r.generation) for r in rows}
            except InvalidRequest as error:
                if "gossip_info" not in str(error):
                    raise
                # Cassandra 4.0 has no gossip_info: the node's peers and itself, as members
                # (no generation to compare; the client's view below still checks them up).
                local = session.execute("SELECT broadcast_address FROM system.local", timeout=10)
                peers = session.execute("SELECT peer FROM system.peers", timeout=10)
                members = [str(r.broadcast_address) for r in local] + [str(r.peer) for r in peers]
                return {member: ("NORMAL", None) for member in members}
    finally:
        cluster.shutdown()


def hosts_not_up(addresses: set[str], port: int) -> set[str]:
    """Those of ``addresses`` that some node among them does not gossip as a NORMAL member at
    the node's current generation (a restarted node has a new one: its peers must have heard
    from it since), or that a client connected to all of them does not see up."""
    views = {address: gossip_view(address, port) for address in sorted(addresses)}
    missing = set()
    for node in addresses:
        generation = views[node].get(node, ("", None))[1]  # the node's own, since its start
        for viewer in addresses:
            state, seen = views[viewer].get(node, ("", None))
            if not state.startswith("NORMAL") or seen != generation:
                missing.add(node)
    # A client's view: the driver learns the ring from one node and connects to every other.
    cluster = Connection(host=",".join(sorted(addresses)), port=port).cluster(
        connect_timeout=5, control_connection_timeout=5)
    try:
        with quiet_driver():
            cluster.connect()
            up = {str(h.address) for h in cluster.metadata.all_hosts() if h.is_up}
    finally:
        cluster.shutdown()
    return missing | (addresses - up)


def node_read_counts(connection: Connection, keyspace: str,
                     table: str) -> dict[str, tuple[int, int]]:
    """Per contact point of ``connection``: (reads of ``keyspace.table`` it coordinated, reads
    it served from its own data), from its ``system_views`` (counted since the node started).
    With token-aware routing the two are equal at RF 1: no node forwards a read."""
    counts = {}
    for address in connection.hosts:
        cluster = single_node_cluster(address, connection.port)
        try:
            session = cluster.connect()
            values = []
            for view in ("coordinator_read_latency", "local_read_latency"):
                row = session.execute(f"SELECT count FROM system_views.{view} WHERE "
                                      "keyspace_name = %s AND table_name = %s",
                                      (keyspace, table)).one()
                values.append(int(row.count) if row else 0)
            counts[address] = (values[0], values[1])
        finally:
            cluster.shutdown()
    return counts
