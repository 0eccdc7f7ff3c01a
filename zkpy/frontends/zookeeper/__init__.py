"""The ZooKeeper client protocol: connections and their framing, the session handshake, auth and
SASL, reads, watches and replies, over the replica core."""
