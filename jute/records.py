"""Every Jute record ZooKeeper 3.8/3.9 puts on the wire or on disk, declared once.

Each declaration lists the fields in wire order, as ``zookeeper.jute`` defines them (field names
are the IDL's, in snake_case, with units where the IDL leaves them implicit). ``make_record``
derives the record class and its fast codec from the declaration; nothing else in the project
describes a record's layout.
"""

from __future__ import annotations

from jute.codegen import make_record
from jute.primitives import Bool, Buffer, Int, Long, Trailing, UString, Vector, record_struct as S

# --- org.apache.zookeeper.data ---------------------------------------------------------------
Id = make_record("Id", S("scheme" / UString, "id" / UString))
ACL = make_record("ACL", S("perms" / Int, "id" / Id.construct))
Stat = make_record("Stat", S(
    "czxid" / Long, "mzxid" / Long, "ctime" / Long, "mtime" / Long,
    "version" / Int, "cversion" / Int, "aversion" / Int, "ephemeral_owner" / Long,
    "data_length" / Int, "num_children" / Int, "pzxid" / Long,
))
StatPersisted = make_record("StatPersisted", S(
    "czxid" / Long, "mzxid" / Long, "ctime" / Long, "mtime" / Long,
    "version" / Int, "cversion" / Int, "aversion" / Int, "ephemeral_owner" / Long,
    "pzxid" / Long,
))
ClientInfo = make_record("ClientInfo", S("auth_scheme" / UString, "user" / UString))

# --- org.apache.zookeeper.proto: session and framing ------------------------------------------
ConnectRequest = make_record("ConnectRequest", S(
    "protocol_version" / Int, "last_zxid_seen" / Long, "timeout_ms" / Int,
    "session_id" / Long, "passwd" / Buffer, "read_only" / Trailing(Bool),
))
ConnectResponse = make_record("ConnectResponse", S(
    "protocol_version" / Int, "timeout_ms" / Int, "session_id" / Long, "passwd" / Buffer,
    "read_only" / Trailing(Bool),
))
RequestHeader = make_record("RequestHeader", S("xid" / Int, "type" / Int))
ReplyHeader = make_record("ReplyHeader", S("xid" / Int, "zxid" / Long, "err" / Int))
MultiHeader = make_record("MultiHeader", S("type" / Int, "done" / Bool, "err" / Int))
AuthPacket = make_record("AuthPacket", S("type" / Int, "scheme" / UString, "auth" / Buffer))
WatcherEvent = make_record("WatcherEvent", S("type" / Int, "state" / Int, "path" / UString))
ErrorResponse = make_record("ErrorResponse", S("err" / Int))
SetWatches = make_record("SetWatches", S(
    "relative_zxid" / Long, "data_watches" / Vector(UString),
    "exist_watches" / Vector(UString), "child_watches" / Vector(UString),
))
SetWatches2 = make_record("SetWatches2", S(
    "relative_zxid" / Long, "data_watches" / Vector(UString),
    "exist_watches" / Vector(UString), "child_watches" / Vector(UString),
    "persistent_watches" / Vector(UString), "persistent_recursive_watches" / Vector(UString),
))
GetSASLRequest = make_record("GetSASLRequest", S("token" / Buffer))
SetSASLRequest = make_record("SetSASLRequest", S("token" / Buffer))
SetSASLResponse = make_record("SetSASLResponse", S("token" / Buffer))

# --- org.apache.zookeeper.proto: requests ------------------------------------------------------
_ACLS = Vector(ACL.construct)
CreateRequest = make_record("CreateRequest", S(
    "path" / UString, "data" / Buffer, "acl" / _ACLS, "flags" / Int))
CreateTTLRequest = make_record("CreateTTLRequest", S(
    "path" / UString, "data" / Buffer, "acl" / _ACLS, "flags" / Int, "ttl_ms" / Long))
DeleteRequest = make_record("DeleteRequest", S("path" / UString, "version" / Int))
ExistsRequest = make_record("ExistsRequest", S("path" / UString, "watch" / Bool))
GetDataRequest = make_record("GetDataRequest", S("path" / UString, "watch" / Bool))
SetDataRequest = make_record("SetDataRequest", S(
    "path" / UString, "data" / Buffer, "version" / Int))
GetACLRequest = make_record("GetACLRequest", S("path" / UString))
SetACLRequest = make_record("SetACLRequest", S(
    "path" / UString, "acl" / _ACLS, "version" / Int))
GetChildrenRequest = make_record("GetChildrenRequest", S("path" / UString, "watch" / Bool))
GetChildren2Request = make_record("GetChildren2Request", S("path" / UString, "watch" / Bool))
SyncRequest = make_record("SyncRequest", S("path" / UString))
CheckVersionRequest = make_record("CheckVersionRequest", S("path" / UString, "version" / Int))
ReconfigRequest = make_record("ReconfigRequest", S(
    "joining_servers" / UString, "leaving_servers" / UString, "new_members" / UString,
    "cur_config_id" / Long))
CheckWatchesRequest = make_record("CheckWatchesRequest", S("path" / UString, "type" / Int))
RemoveWatchesRequest = make_record("RemoveWatchesRequest", S("path" / UString, "type" / Int))
GetEphemeralsRequest = make_record("GetEphemeralsRequest", S("prefix_path" / UString))
GetAllChildrenNumberRequest = make_record("GetAllChildrenNumberRequest", S("path" / UString))
AddWatchRequest = make_record("AddWatchRequest", S("path" / UString, "mode" / Int))
GetMaxChildrenRequest = make_record("GetMaxChildrenRequest", S("path" / UString))
SetMaxChildrenRequest = make_record("SetMaxChildrenRequest", S("path" / UString, "max" / Int))
GetStatPersistedRequest = make_record("GetStatPersistedRequest", S("path" / UString))

# --- org.apache.zookeeper.proto: responses -----------------------------------------------------
CreateResponse = make_record("CreateResponse", S("path" / UString))
Create2Response = make_record("Create2Response", S("path" / UString, "stat" / Stat.construct))
ExistsResponse = make_record("ExistsResponse", S("stat" / Stat.construct))
GetDataResponse = make_record("GetDataResponse", S("data" / Buffer, "stat" / Stat.construct))
SetDataResponse = make_record("SetDataResponse", S("stat" / Stat.construct))
GetACLResponse = make_record("GetACLResponse", S("acl" / _ACLS, "stat" / Stat.construct))
SetACLResponse = make_record("SetACLResponse", S("stat" / Stat.construct))
GetChildrenResponse = make_record("GetChildrenResponse", S("children" / Vector(UString)))
GetChildren2Response = make_record("GetChildren2Response", S(
    "children" / Vector(UString), "stat" / Stat.construct))
SyncResponse = make_record("SyncResponse", S("path" / UString))
GetEphemeralsResponse = make_record("GetEphemeralsResponse", S("ephemerals" / Vector(UString)))
GetAllChildrenNumberResponse = make_record("GetAllChildrenNumberResponse", S("total_number" / Int))
GetMaxChildrenResponse = make_record("GetMaxChildrenResponse", S("max" / Int))
GetStatPersistedResponse = make_record("GetStatPersistedResponse", S(
    "stat_persisted" / StatPersisted.construct))
WhoAmIResponse = make_record("WhoAmIResponse", S("client_info" / Vector(ClientInfo.construct)))

# --- org.apache.zookeeper.server.quorum and persistence ----------------------------------------
LearnerInfo = make_record("LearnerInfo", S(
    "server_id" / Long, "protocol_version" / Int, "config_version" / Long))
QuorumPacket = make_record("QuorumPacket", S(
    "type" / Int, "zxid" / Long, "data" / Buffer, "authinfo" / Vector(Id.construct)))
QuorumAuthPacket = make_record("QuorumAuthPacket", S(
    "magic" / Long, "status" / Int, "token" / Buffer))
FileHeader = make_record("FileHeader", S("magic" / Int, "version" / Int, "dbid" / Long))

# --- org.apache.zookeeper.txn ------------------------------------------------------------------
TxnDigest = make_record("TxnDigest", S("version" / Int, "tree_digest" / Long))
TxnHeader = make_record("TxnHeader", S(
    "client_id" / Long, "cxid" / Int, "zxid" / Long, "time_ms" / Long, "type" / Int))
CreateTxnV0 = make_record("CreateTxnV0", S(
    "path" / UString, "data" / Buffer, "acl" / _ACLS, "ephemeral" / Bool))
CreateTxn = make_record("CreateTxn", S(
    "path" / UString, "data" / Buffer, "acl" / _ACLS, "ephemeral" / Bool,
    "parent_cversion" / Int))
CreateTTLTxn = make_record("CreateTTLTxn", S(
    "path" / UString, "data" / Buffer, "acl" / _ACLS, "parent_cversion" / Int, "ttl_ms" / Long))
CreateContainerTxn = make_record("CreateContainerTxn", S(
    "path" / UString, "data" / Buffer, "acl" / _ACLS, "parent_cversion" / Int))
DeleteTxn = make_record("DeleteTxn", S("path" / UString))
SetDataTxn = make_record("SetDataTxn", S("path" / UString, "data" / Buffer, "version" / Int))
CheckVersionTxn = make_record("CheckVersionTxn", S("path" / UString, "version" / Int))
SetACLTxn = make_record("SetACLTxn", S("path" / UString, "acl" / _ACLS, "version" / Int))
SetMaxChildrenTxn = make_record("SetMaxChildrenTxn", S("path" / UString, "max" / Int))
CreateSessionTxn = make_record("CreateSessionTxn", S("timeout_ms" / Int))
CloseSessionTxn = make_record("CloseSessionTxn", S("paths_to_delete" / Vector(UString)))
ErrorTxn = make_record("ErrorTxn", S("err" / Int))
Txn = make_record("Txn", S("type" / Int, "data" / Buffer))
MultiTxn = make_record("MultiTxn", S("txns" / Vector(Txn.construct)))

ALL_RECORDS: tuple[type, ...] = tuple(
    value for value in list(globals().values())
    if isinstance(value, type) and hasattr(value, "construct") and hasattr(value, "decode_from")
)
