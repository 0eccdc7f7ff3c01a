"""Request preparation: validate a write, check ACLs and versions, and settle it as a txn.

Prep runs before the write is ordered, so it must see the tree as it will be once every
earlier, still-outstanding txn is applied. It keeps a ``ChangeRecord`` per path touched by an
outstanding txn (ZooKeeper's outstandingChanges); lookups read those first and the tree second.
Everything the txn needs to apply deterministically (zxid, time, new versions, the parent's new
cversion, the ephemeral owner, the session's ephemerals on close) is fixed here.

A failed write still becomes a txn, as in ZooKeeper: an ErrorTxn with its own zxid, so the
client's reply carries a zxid and the log records the attempt.
"""

from __future__ import annotations

from jute import CreateMode, Err, OpCode, Perms
from jute import records as r
from jute.opcodes import MultiOp

from zkpy.replica.request import KeeperError, Request
from zkpy.tree.acl import AclChecker
from zkpy.tree import paths
from zkpy.tree.datatree import DataTree
from zkpy.tree.ephemeral import CONTAINER_OWNER, MAX_TTL_MS, is_session_owner, ttl_of, ttl_owner
from zkpy.tree.txncodec import encode_create_txn

CONFIG_PATH = "/zookeeper/config"
_MODES = {m.value: m for m in CreateMode}
_new = tuple.__new__  # builds a record without NamedTuple's Python-level __new__
_READ, _WRITE, _CREATE, _DELETE, _ADMIN = (int(p) for p in (
    Perms.READ, Perms.WRITE, Perms.CREATE, Perms.DELETE, Perms.ADMIN))
_SEQUENTIAL = {CreateMode.PERSISTENT_SEQUENTIAL, CreateMode.EPHEMERAL_SEQUENTIAL,
               CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL}
_EPHEMERAL = {CreateMode.EPHEMERAL, CreateMode.EPHEMERAL_SEQUENTIAL}
_TTL = {CreateMode.PERSISTENT_WITH_TTL, CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL}
# Plain ints for the create path: reading an IntEnum member costs about 50 ns.
_CONTAINER = int(CreateMode.CONTAINER)
_OP_CREATE = int(OpCode.create)
_OP_CREATE2 = int(OpCode.create2)
_OP_CREATE_CONTAINER = int(OpCode.createContainer)
_OP_CREATE_TTL = int(OpCode.createTTL)
_OP_ERROR = int(OpCode.error)
_OP_SET_DATA = int(OpCode.setData)


class ChangeRecord:
    """The state a path will have once outstanding txns apply (None fields: node absent)."""

    __slots__ = ("zxid", "path", "exists", "version", "cversion", "aversion", "ephemeral_owner",
                 "num_children", "acl", "pzxid")

    def __init__(self, zxid, path, exists, version=0, cversion=0, aversion=0, ephemeral_owner=0,
                 num_children=0, acl=(), pzxid=0) -> None:
        self.zxid = zxid
        self.path = path
        self.exists = exists
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.ephemeral_owner = ephemeral_owner
        self.num_children = num_children
        self.acl = acl
        self.pzxid = pzxid

    def duplicate(self, zxid: int) -> "ChangeRecord":
        return ChangeRecord(zxid, self.path, self.exists, self.version, self.cversion,
                            self.aversion, self.ephemeral_owner, self.num_children, self.acl,
                            self.pzxid)


class PrepSettings:
    __slots__ = ("extended_types_enabled", "super_digest", "reconfig_enabled", "reconfig_planner",
                 "acl_checker")

    def __init__(self, extended_types_enabled: bool = False, super_digest: str | None = None,
                 reconfig_enabled: bool = False, acl_checker: AclChecker | None = None) -> None:
        self.extended_types_enabled = extended_types_enabled
        # The server's providers (sasl, x509): each server has its own checker.
        self.acl_checker = acl_checker or AclChecker()
        self.super_digest = super_digest
        self.reconfig_enabled = reconfig_enabled
        # Set by an ensemble leader: (ReconfigRequest, zxid) -> the new /zookeeper/config text,
        # raising KeeperError when the reconfig cannot be done.
        self.reconfig_planner = None


class Prep:
    """Turns write requests into txns; see the module docstring for its duties."""

    def __init__(self, tree: DataTree, settings: PrepSettings) -> None:
        self.tree = tree
        self.settings = settings
        self.outstanding: dict[str, ChangeRecord] = {}
        self._paths_by_zxid: dict[int, list[str]] = {}
        # While a multi is prepared: (path, record it replaced or None) per change, to roll
        # back a failed multi without copying every outstanding change per multi.
        self._undo: list[tuple[str, ChangeRecord | None]] | None = None
        self.next_zxid = tree.last_zxid + 1

    # -- outstanding changes ---------------------------------------------------------------

    def record_for(self, path: str) -> ChangeRecord:
        """The future state of ``path``; raises NoNode if it will not exist."""
        if path == "":
            path = "/"
        record = self.outstanding.get(path)
        if record is None:
            node = self.tree.get(path)
            if node is None:
                raise KeeperError(Err.NONODE, path)
            return ChangeRecord(node.czxid, path, True, node.version, node.cversion,
                                node.aversion, node.ephemeral_owner, node.num_children(),
                                node.acl, node.pzxid)
        if not record.exists:
            raise KeeperError(Err.NONODE, path)
        return record

    def _add_change(self, record: ChangeRecord) -> None:
        if self._undo is not None:
            self._undo.append((record.path, self.outstanding.get(record.path)))
        self.outstanding[record.path] = record
        self._paths_by_zxid.setdefault(record.zxid, []).append(record.path)

    def _changing(self, record: ChangeRecord, zxid: int) -> ChangeRecord:
        """The record the txn ``zxid`` changes (``record`` comes from ``record_for``): itself
        if this txn (a multi) made it already, else added as this txn's change, copied if an
        earlier txn's. Copying once per multi, not once per op, keeps a multi of creates
        under one parent linear; the undo list still holds the record from before the multi."""
        if record.zxid == zxid:
            return record
        if self.outstanding.get(record.path) is record:  # an earlier txn's change: copied
            record = record.duplicate(zxid)
        else:  # made from the tree by record_for, held by nobody else: taken as it is
            record.zxid = zxid
        self._add_change(record)
        return record

    def applied(self, zxid: int) -> None:
        """Forget the changes of a txn the tree now holds (ZooKeeper's FinalRequestProcessor)."""
        for path in self._paths_by_zxid.pop(zxid, ()):
            record = self.outstanding.get(path)
            if record is not None and record.zxid <= zxid:
                del self.outstanding[path]

    # -- entry point -------------------------------------------------------------------------

    def prepare(self, request: Request, time_ms: int) -> tuple[r.TxnHeader, object]:
        """Settle ``request`` as (TxnHeader, txn); failures become an ErrorTxn."""
        zxid = self.next_zxid
        self.next_zxid += 1
        handler = self._HANDLERS[request.type]
        try:
            txn_type, txn = handler(self, request, request.type, request.body, zxid)
        except KeeperError as error:
            txn_type, txn = _OP_ERROR, r.ErrorTxn(error.code)
        hdr = _new(r.TxnHeader, (request.session_id, request.xid, zxid, time_ms, int(txn_type)))
        return hdr, txn

    def prepare_error(self, request: Request, code: int, time_ms: int) -> tuple[r.TxnHeader, object]:
        """A request refused before preparation (e.g. its session expired) still takes a zxid
        and is logged as an ErrorTxn, as in ZooKeeper."""
        zxid = self.next_zxid
        self.next_zxid += 1
        hdr = r.TxnHeader(request.session_id, request.xid, zxid, time_ms, int(OpCode.error))
        return hdr, r.ErrorTxn(int(code))

    # -- handlers, one per operation -----------------------------------------------------------

    def _check_acl(self, record: ChangeRecord, perm: int, auth_info: tuple) -> None:
        if not self.settings.acl_checker.has_permission(record.acl, perm, auth_info):
            raise KeeperError(Err.NOAUTH)

    def _prep_create(self, request: Request, op_type: int, body, zxid: int):
        mode = _MODES.get(body.flags)
        if mode is None:
            raise KeeperError(Err.BADARGUMENTS, body.path)
        ttl_ms = body.ttl_ms if op_type == _OP_CREATE_TTL else -1
        self._validate_create_mode(mode, ttl_ms, body.path)
        path = body.path
        if path is None or path.rfind("/") == -1 or "\0" in path:
            raise KeeperError(Err.BADARGUMENTS, path)
        parent_path = path[:path.rfind("/")] or "/"
        acl = self.settings.acl_checker.fixup_acl(body.acl, request.auth_info)
        if acl is None:
            raise KeeperError(Err.INVALIDACL, path)
        parent = self.record_for(parent_path)
        self._check_acl(parent, _CREATE, request.auth_info)
        if mode in _SEQUENTIAL:
            path = f"{path}{parent.cversion:010d}"
        if paths.path_error(path) is not None:
            raise KeeperError(Err.BADARGUMENTS, path)
        if self._exists(path):
            raise KeeperError(Err.NODEEXISTS, path)
        if is_session_owner(parent.ephemeral_owner):
            raise KeeperError(Err.NOCHILDRENFOREPHEMERALS, path)
        new_cversion = parent.cversion + 1

        if op_type == _OP_CREATE_CONTAINER or mode == _CONTAINER:
            owner = CONTAINER_OWNER
            txn_type, txn = _OP_CREATE_CONTAINER, r.CreateContainerTxn(
                path, body.data, acl, new_cversion)
        elif mode in _TTL:
            owner = ttl_owner(ttl_ms)
            txn_type, txn = _OP_CREATE_TTL, r.CreateTTLTxn(path, body.data, acl, new_cversion, ttl_ms)
        else:
            ephemeral = mode in _EPHEMERAL
            owner = request.session_id if ephemeral else 0
            txn_type = _OP_CREATE2 if op_type == _OP_CREATE2 else _OP_CREATE
            txn = _new(r.CreateTxn, (path, body.data, acl, ephemeral, new_cversion))

        parent = self._changing(parent, zxid)
        parent.num_children += 1
        parent.cversion = new_cversion
        parent.pzxid = zxid
        self._add_change(ChangeRecord(zxid, path, True, 0, 0, 0, owner, 0, acl, zxid))
        # The result type tells final which response to build: create gives a path only.
        if op_type != _OP_CREATE and txn_type == _OP_CREATE:
            txn_type = _OP_CREATE2
        return txn_type, txn

    def _validate_create_mode(self, mode: CreateMode, ttl_ms: int, path: str) -> None:
        if mode in _TTL and not self.settings.extended_types_enabled:
            raise KeeperError(Err.UNIMPLEMENTED, path)
        if mode in _TTL:
            if ttl_ms <= 0 or ttl_ms > MAX_TTL_MS:
                raise KeeperError(Err.BADARGUMENTS, path)
        elif ttl_ms >= 0:
            raise KeeperError(Err.BADARGUMENTS, path)

    def _exists(self, path: str) -> bool:
        """Will ``path`` exist once the outstanding txns apply? (No exception on the common
        'no' of a create.)"""
        record = self.outstanding.get(path)
        if record is not None:
            return record.exists
        return path in self.tree.nodes

    def _prep_delete(self, request: Request, op_type: int, body, zxid: int):
        path = body.path
        if path is None or path.rfind("/") == -1 or "\0" in path or path in paths.SPECIAL_PATHS:
            raise KeeperError(Err.BADARGUMENTS, path)
        parent = self.record_for(path[:path.rfind("/")] or "/")
        node: ChangeRecord
        if op_type == OpCode.deleteContainer:
            node = self.record_for(path)
            if node.num_children > 0:
                raise KeeperError(Err.NOTEMPTY, path)
            if node.ephemeral_owner != CONTAINER_OWNER and not ttl_of(node.ephemeral_owner):
                raise KeeperError(Err.BADARGUMENTS, path)
        else:
            self._check_acl(parent, _DELETE, request.auth_info)
            node = self.record_for(path)
            self._check_version(node.version, body.version, path)
            if node.num_children > 0:
                raise KeeperError(Err.NOTEMPTY, path)
        self._record_deletion(path, parent, zxid)
        return op_type, r.DeleteTxn(path)

    def _record_deletion(self, path: str, parent: ChangeRecord, zxid: int) -> None:
        parent = parent.duplicate(zxid)
        parent.num_children -= 1
        parent.pzxid = zxid
        self._add_change(parent)
        self._add_change(ChangeRecord(zxid, path, False))

    @staticmethod
    def _check_version(current: int, expected: int, path: str) -> int:
        if expected != -1 and expected != current:
            raise KeeperError(Err.BADVERSION, path)
        return current + 1

    def _prep_set_data(self, request: Request, op_type: int, body, zxid: int):
        path = body.path
        if paths.path_error(path) is not None:
            raise KeeperError(Err.BADARGUMENTS, path)
        node = self.record_for(path)
        self._check_acl(node, _WRITE, request.auth_info)
        version = self._check_version(node.version, body.version, path)
        self._changing(node, zxid).version = version
        return _OP_SET_DATA, _new(r.SetDataTxn, (path, body.data, version))

    def _prep_set_acl(self, request: Request, op_type: int, body, zxid: int):
        path = body.path
        if paths.path_error(path) is not None:
            raise KeeperError(Err.BADARGUMENTS, path)
        acl = self.settings.acl_checker.fixup_acl(body.acl, request.auth_info)
        if acl is None:
            raise KeeperError(Err.INVALIDACL, path)
        node = self.record_for(path)
        self._check_acl(node, _ADMIN, request.auth_info)
        version = self._check_version(node.aversion, body.version, path)
        node = node.duplicate(zxid)
        node.aversion = version
        node.acl = tuple(acl)
        self._add_change(node)
        return OpCode.setACL, r.SetACLTxn(path, acl, version)

    def _prep_check(self, request: Request, op_type: int, body, zxid: int):
        path = body.path
        if paths.path_error(path) is not None:
            raise KeeperError(Err.BADARGUMENTS, path)
        node = self.record_for(path)
        self._check_acl(node, _READ, request.auth_info)
        self._check_version(node.version, body.version, path)
        return OpCode.check, r.CheckVersionTxn(path, body.version)

    def _prep_multi(self, request: Request, op_type: int, ops: list[MultiOp], zxid: int):
        # Sub-ops share the multi's zxid. On the first failure every change of the multi is
        # rolled back and the txn records which op failed (ZooKeeper's results: OK before it,
        # its code, RUNTIMEINCONSISTENCY after it).
        saved_paths = list(self._paths_by_zxid.get(zxid, ()))
        subs: list[tuple[int, object]] = []
        failed_at = -1
        failure = 0
        self._undo = undo = []
        try:
            for index, op in enumerate(ops):
                handler = self._MULTI_HANDLERS.get(op.type)
                try:
                    if handler is None:
                        raise KeeperError(Err.UNIMPLEMENTED)
                    subs.append(handler(self, request, op.type, op.request, zxid))
                except KeeperError as error:
                    failed_at, failure = index, error.code
                    break
        finally:
            self._undo = None
        if failed_at >= 0:
            self._roll_back(undo)
            if saved_paths:
                self._paths_by_zxid[zxid] = saved_paths
            else:
                self._paths_by_zxid.pop(zxid, None)
            errors = [0] * failed_at + [failure] + [int(Err.RUNTIMEINCONSISTENCY)] * (len(ops) - failed_at - 1)
            subs = [(OpCode.error, r.ErrorTxn(code)) for code in errors]
        txns = [r.Txn(int(t), _TXN_CODECS[t](txn)) for t, txn in subs]
        return OpCode.multi, r.MultiTxn(txns)

    def _roll_back(self, undo: list[tuple[str, ChangeRecord | None]]) -> None:
        for path, previous in reversed(undo):
            if previous is None:
                self.outstanding.pop(path, None)
            else:
                self.outstanding[path] = previous

    def _prep_create_session(self, request: Request, op_type: int, body, zxid: int):
        return OpCode.createSession, r.CreateSessionTxn(body)

    def _prep_close_session(self, request: Request, op_type: int, body, zxid: int):
        session_id = request.session_id
        doomed = set(self.tree.ephemerals.get(session_id, ()))
        for path, record in self.outstanding.items():
            if record.exists and record.ephemeral_owner == session_id:
                doomed.add(path)
            elif not record.exists:
                doomed.discard(path)
        for path in sorted(doomed, reverse=True):
            parent = self.record_for(path[:path.rfind("/")] or "/")
            self._record_deletion(path, parent, zxid)
        return OpCode.closeSession, r.CloseSessionTxn(sorted(doomed, reverse=True))

    def _prep_reconfig(self, request: Request, op_type: int, body, zxid: int):
        planner = self.settings.reconfig_planner
        if not self.settings.reconfig_enabled or planner is None:
            raise KeeperError(Err.RECONFIGDISABLED)
        node = self.record_for(CONFIG_PATH)
        # ZooKeeper asks for WRITE on /zookeeper/config (world has READ only: a super user,
        # or an ACL an operator set, may reconfigure).
        self._check_acl(node, _WRITE, request.auth_info)
        text = planner(body, zxid)
        node = node.duplicate(zxid)
        node.version += 1
        self._add_change(node)
        return OpCode.reconfig, r.SetDataTxn(CONFIG_PATH, text.encode(), node.version)

    _HANDLERS = {
        OpCode.create: _prep_create,
        OpCode.create2: _prep_create,
        OpCode.createContainer: _prep_create,
        OpCode.createTTL: _prep_create,
        OpCode.delete: _prep_delete,
        OpCode.deleteContainer: _prep_delete,
        OpCode.setData: _prep_set_data,
        OpCode.setACL: _prep_set_acl,
        OpCode.check: _prep_check,
        OpCode.multi: _prep_multi,
        OpCode.createSession: _prep_create_session,
        OpCode.closeSession: _prep_close_session,
        OpCode.reconfig: _prep_reconfig,
    }
    _MULTI_HANDLERS = {
        OpCode.create: _prep_create,
        OpCode.create2: _prep_create,
        OpCode.createContainer: _prep_create,
        OpCode.createTTL: _prep_create,
        OpCode.delete: _prep_delete,
        OpCode.setData: _prep_set_data,
        OpCode.check: _prep_check,
    }


WRITE_OPS = frozenset(Prep._HANDLERS)

_TXN_CODECS = {
    OpCode.create: encode_create_txn,
    OpCode.create2: encode_create_txn,
    OpCode.createContainer: r.CreateContainerTxn.encode,
    OpCode.createTTL: r.CreateTTLTxn.encode,
    OpCode.delete: r.DeleteTxn.encode,
    OpCode.setData: r.SetDataTxn.encode,
    OpCode.check: r.CheckVersionTxn.encode,
    OpCode.error: r.ErrorTxn.encode,
}
