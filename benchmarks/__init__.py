"""The benchmark harness: zkpy against the reference ZooKeeper (``make bench``).

Not part of the installed package (``pip install .`` ships ``jute`` and ``zkpy`` only): it runs
from a checkout, from the repository root, because it starts its servers with the tests' harness
(``tests.support.servers``) and needs the ``bench`` extra (matplotlib) and a JVM for the
reference.

* ``run_all``: everything ``make bench`` runs, tables and plots in ``bench-results/``;
* ``loadgen``, ``scaling``, ``failover``: the load generators, each also runnable alone
  (``python -m benchmarks.loadgen --help``);
* ``codec``: the jute codec against construct;
* ``client``: the one raw Jute client the generators share; ``servers`` (four-letter words,
  leaders, logs), ``procfs`` (server CPU and RSS), ``report`` (statistics and tables) and
  ``settings`` (the BENCH_* variables) are their other shared parts.
"""
