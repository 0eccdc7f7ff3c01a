"""Front ends: each turns its protocol's requests into the replica core's commands and their
results back (the ZooKeeper client protocol today)."""
