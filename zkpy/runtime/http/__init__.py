"""The HTTP side of a server, served by aiohttp on the server's event loop.

* ``endpoint``: one listening HTTP(S) endpoint, its limits and its answers to bad requests;
* ``unified``: port unification (HTTP and HTTPS on one port, ZooKeeper's admin.portUnification);
* ``commands``: ZooKeeper 3.8's AdminServer commands (``/commands/...``);
* ``dashboard``: the dashboard's static files and its read-only JSON API (``/api/...``);
* ``zkvalues``: values in the shapes ZooKeeper's JSON gives them.

The Prometheus handler is ``zkpy.runtime.metrics``; ``zkpy.runtime.admin`` wires them to a
server as the configuration asks.
"""
