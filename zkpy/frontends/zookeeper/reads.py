"""Read operations: answered from the applied tree, one handler per opcode.

A read is only run when every earlier request of its session has been answered (the front end
enforces per-session order), so it sees that session's own writes. Handlers get the tree, the
watches, the server's ACL checker and the request, and return the reply body or raise
KeeperError; a watch is registered only when the read succeeds, except that exists on a
missing node leaves an exist watch, as in ZooKeeper.
"""

from __future__ import annotations

from jute import AddWatchMode, Err, OpCode, Perms, WatcherType
from jute import records as r
from jute.opcodes import MultiResult, encode_multi_response

from zkpy.replica.request import KeeperError, Request
from zkpy.tree.datatree import DataTree
from zkpy.tree.watches import WatchManager

_NO_BODY = b""
_READ = int(Perms.READ)
_ADMIN = int(Perms.ADMIN)
_READ_OR_ADMIN = int(Perms.READ | Perms.ADMIN)
_ADD_WATCH_OK = r.ErrorResponse.encode((0,))


def _node(tree: DataTree, path: str):
    node = tree.nodes.get(path)
    if node is None:
        raise KeeperError(Err.NONODE, path)
    return node


def _require(checker, node, perm: int, request: Request) -> None:
    auth = request.auth_info
    if not checker.has_permission(node.acl, perm, auth):
        raise KeeperError(Err.NOAUTH)


def read_get_data(tree, watches, checker, request: Request) -> bytes:
    body = request.body
    node = _node(tree, body.path)
    _require(checker, node, _READ, request)
    if body.watch:
        watches.add_data_watch(body.path, request.session_id)
    return r.GetDataResponse.encode((node.data, node.stat()))


def read_exists(tree, watches, checker, request: Request) -> bytes:
    body = request.body
    node = tree.nodes.get(body.path)
    if body.watch:
        watches.add_data_watch(body.path, request.session_id)
    if node is None:
        raise KeeperError(Err.NONODE, body.path)
    return r.ExistsResponse.encode((node.stat(),))


def _children(tree, watches, checker, request: Request):
    body = request.body
    node = _node(tree, body.path)
    _require(checker, node, _READ, request)
    if body.watch:
        watches.add_child_watch(body.path, request.session_id)
    return node, list(node.children) if node.children else []


def read_get_children(tree, watches, checker, request: Request) -> bytes:
    _, children = _children(tree, watches, checker, request)
    return r.GetChildrenResponse.encode((children,))


def read_get_children2(tree, watches, checker, request: Request) -> bytes:
    node, children = _children(tree, watches, checker, request)
    return r.GetChildren2Response.encode((children, node.stat()))


def read_get_acl(tree, watches, checker, request: Request) -> bytes:
    node = _node(tree, request.body.path)
    auth = request.auth_info
    _require(checker, node, _READ_OR_ADMIN, request)
    acl = list(node.acl)
    if not checker.has_permission(node.acl, _ADMIN, auth):
        # Without ADMIN the digest hashes are hidden, as ZooKeeper 3.8 does.
        acl = [r.ACL(a.perms, r.Id(a.id.scheme, a.id.id.split(":", 1)[0] + ":x"))
               if a.id.scheme == "digest" else a for a in acl]
    return r.GetACLResponse.encode((acl, node.stat()))


def read_get_all_children_number(tree, watches, checker, request: Request) -> bytes:
    path = request.body.path
    node = _node(tree, path)
    _require(checker, node, _READ, request)
    return r.GetAllChildrenNumberResponse.encode((tree.count_descendants(path),))


def read_get_ephemerals(tree, watches, checker, request: Request) -> bytes:
    prefix = request.body.prefix_path
    owned = tree.ephemerals.get(request.session_id, ())
    if prefix is None or not prefix.strip() or prefix.strip() == "/":
        found = sorted(owned)
    else:
        found = sorted(p for p in owned if p.startswith(prefix))
    return r.GetEphemeralsResponse.encode((found,))


def read_add_watch(tree, watches, checker, request: Request) -> bytes:
    body = request.body
    if body.mode not in (AddWatchMode.PERSISTENT, AddWatchMode.PERSISTENT_RECURSIVE):
        # ZooKeeper fails to map the mode and answers as for an undecodable request.
        raise KeeperError(Err.MARSHALLINGERROR, body.path)
    watches.add_persistent(body.path, request.session_id,
                           body.mode == AddWatchMode.PERSISTENT_RECURSIVE)
    # ZooKeeper answers addWatch with an ErrorResponse(0) body, and the Java client reads it.
    return _ADD_WATCH_OK


def _watch_tables(watches: WatchManager, watcher_type: int):
    if watcher_type == WatcherType.Children:
        return (watches.child,)
    if watcher_type == WatcherType.Data:
        return (watches.data,)
    if watcher_type == WatcherType.Any:
        return (watches.data, watches.child)
    raise KeeperError(Err.BADARGUMENTS)


def read_check_watches(tree, watches, checker, request: Request) -> bytes:
    # ZooKeeper 3.8's checkWatches answers OK when any session watches the path (its
    # containsWatcher ignores the watcher at the path itself); removeWatches does not.
    body = request.body
    tables = _watch_tables(watches, body.type)
    if not any(t.by_path.get(body.path) for t in tables):
        raise KeeperError(Err.NOWATCHER, body.path)
    return _NO_BODY


def read_remove_watches(tree, watches, checker, request: Request) -> bytes:
    body = request.body
    tables = _watch_tables(watches, body.type)
    removed = [t.remove(body.path, request.session_id) for t in tables]
    if not any(removed):
        raise KeeperError(Err.NOWATCHER, body.path)
    return _NO_BODY


def read_sync(tree, watches, checker, request: Request) -> bytes:
    return r.SyncResponse.encode((request.body.path,))


def read_ping(tree, watches, checker, request: Request) -> bytes:
    return _NO_BODY


def read_who_am_i(tree, watches, checker, request: Request) -> bytes:
    infos = [r.ClientInfo(a.scheme, a.id.split(":", 1)[0] if a.scheme == "digest" else a.id)
             for a in request.auth_info]
    return r.WhoAmIResponse.encode((infos,))


def read_set_watches(tree, watches, checker, request: Request) -> bytes:
    """Re-register a reconnecting client's watches, firing what changed since its zxid."""
    body = request.body
    relative_zxid = body.relative_zxid
    session_id = request.session_id
    nodes = tree.nodes
    fired: list[tuple[int, int, str]] = []
    for path in body.data_watches or ():
        node = nodes.get(path)
        if node is None:
            fired.append((session_id, 2, path, None))
        elif node.mzxid > relative_zxid:
            fired.append((session_id, 3, path, None))
        else:
            watches.add_data_watch(path, session_id)
    for path in body.exist_watches or ():
        if path in nodes:
            fired.append((session_id, 1, path, None))
        else:
            watches.add_data_watch(path, session_id)
    for path in body.child_watches or ():
        node = nodes.get(path)
        if node is None:
            fired.append((session_id, 2, path, None))
        elif node.pzxid > relative_zxid:
            fired.append((session_id, 4, path, None))
        else:
            watches.add_child_watch(path, session_id)
    if request.type == OpCode.setWatches2:
        for path in body.persistent_watches or ():
            watches.add_persistent(path, session_id, recursive=False)
        for path in body.persistent_recursive_watches or ():
            watches.add_persistent(path, session_id, recursive=True)
    request.result = fired
    return _NO_BODY


def read_multi(tree, watches, checker, request: Request) -> bytes:
    """multiRead: each op answered on its own; a failed op gives an error result."""
    results = []
    for op in request.body:
        sub = Request(request.session_id, request.xid, op.type, op.request, request.auth_info)
        try:
            if op.type == OpCode.getData:
                node = _node(tree, op.request.path)
                _require(checker, node, _READ, sub)
                if op.request.watch:
                    watches.add_data_watch(op.request.path, request.session_id)
                results.append(MultiResult(OpCode.getData, 0, r.GetDataResponse(node.data, node.stat())))
            elif op.type == OpCode.getChildren:
                _, children = _children(tree, watches, checker, sub)
                results.append(MultiResult(OpCode.getChildren, 0, r.GetChildrenResponse(children)))
            else:
                raise KeeperError(Err.BADARGUMENTS)
        except KeeperError as error:
            results.append(MultiResult(OpCode.error, error.code, r.ErrorResponse(error.code)))
    return encode_multi_response(results)


READ_HANDLERS = {
    OpCode.getData: read_get_data,
    OpCode.exists: read_exists,
    OpCode.getChildren: read_get_children,
    OpCode.getChildren2: read_get_children2,
    OpCode.getACL: read_get_acl,
    OpCode.getAllChildrenNumber: read_get_all_children_number,
    OpCode.getEphemerals: read_get_ephemerals,
    OpCode.addWatch: read_add_watch,
    OpCode.checkWatches: read_check_watches,
    OpCode.removeWatches: read_remove_watches,
    OpCode.sync: read_sync,
    OpCode.ping: read_ping,
    OpCode.whoAmI: read_who_am_i,
    OpCode.setWatches: read_set_watches,
    OpCode.setWatches2: read_set_watches,
    OpCode.multiRead: read_multi,
}
