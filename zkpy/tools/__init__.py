"""Operations tools: import from and export to ZooKeeper's data directories, and dumps of
zkpy's own snapshots and transaction log (``zkpy import``, ``zkpy export``,
``zkpy dump-snapshot``, ``zkpy dump-log``)."""
