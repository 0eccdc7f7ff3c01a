"""What the ZooKeeper front end keeps per client connection and in total: ids, packet counts
and latencies (the figures of the cons, stat and mntr four-letter words)."""

from __future__ import annotations

from jute import records as r


class Connection:
    """The front end's view of one client connection."""

    __slots__ = ("connection_id", "client_ip", "session_id", "auth_info", "closing",
                 "packets_received", "packets_sent", "last_zxid", "established_ms",
                 "last_op", "last_cxid", "last_response_ms", "last_latency_ms", "latency",
                 "sasl")

    def __init__(self, connection_id: int, client_ip: str, now_ms: int) -> None:
        self.connection_id = connection_id
        self.client_ip = client_ip
        self.session_id = 0
        self.auth_info: tuple = (r.Id("ip", client_ip),)
        self.closing = False
        self.sasl = None  # this connection's SASL exchange (zkpy.auth.digest_md5), once begun
        self.packets_received = 0
        self.packets_sent = 0
        self.last_zxid = -1
        self.established_ms = now_ms
        # What the cons four-letter word reports, as ZooKeeper's updateStatsForResponse keeps it.
        self.last_op: int | None = None
        self.last_cxid = -1
        self.last_response_ms = 0
        self.last_latency_ms = 0
        self.latency = Stats()


class Stats:
    __slots__ = ("packets_received", "packets_sent", "latency_min_ms", "latency_max_ms",
                 "latency_total_ms", "latency_count", "watch_limit_rejections")

    def __init__(self) -> None:
        self.reset()
        self.watch_limit_rejections = 0  # a limit counter: srst does not clear it

    def reset(self) -> None:
        self.packets_received = 0
        self.packets_sent = 0
        self.latency_min_ms = 0
        self.latency_max_ms = 0
        self.latency_total_ms = 0
        self.latency_count = 0

    def record_latency(self, latency_ms: int) -> None:
        if self.latency_count == 0 or latency_ms < self.latency_min_ms:
            self.latency_min_ms = latency_ms
        if latency_ms > self.latency_max_ms:
            self.latency_max_ms = latency_ms
        self.latency_total_ms += latency_ms
        self.latency_count += 1
