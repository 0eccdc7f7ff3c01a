"""ZooKeeper's numbers: opcodes, error codes, watch event types and states, create modes,
permissions and the special xids. Values are ZooKeeper's own (ZooDefs, KeeperException.Code,
Watcher.Event), so they can be compared with what any client sends or expects.
"""

from enum import IntEnum, IntFlag


class OpCode(IntEnum):
    notification = 0
    create = 1
    delete = 2
    exists = 3
    getData = 4
    setData = 5
    getACL = 6
    setACL = 7
    getChildren = 8
    sync = 9
    ping = 11
    getChildren2 = 12
    check = 13
    multi = 14
    create2 = 15
    reconfig = 16
    checkWatches = 17
    removeWatches = 18
    createContainer = 19
    deleteContainer = 20
    createTTL = 21
    multiRead = 22
    auth = 100
    setWatches = 101
    sasl = 102
    getEphemerals = 103
    getAllChildrenNumber = 104
    setWatches2 = 105
    addWatch = 106
    whoAmI = 107
    createSession = -10
    closeSession = -11
    error = -1


class Err(IntEnum):
    """KeeperException.Code."""

    OK = 0
    SYSTEMERROR = -1
    RUNTIMEINCONSISTENCY = -2
    DATAINCONSISTENCY = -3
    CONNECTIONLOSS = -4
    MARSHALLINGERROR = -5
    UNIMPLEMENTED = -6
    OPERATIONTIMEOUT = -7
    BADARGUMENTS = -8
    UNKNOWNSESSION = -12
    NEWCONFIGNOQUORUM = -13
    RECONFIGINPROGRESS = -14
    APIERROR = -100
    NONODE = -101
    NOAUTH = -102
    BADVERSION = -103
    NOCHILDRENFOREPHEMERALS = -108
    NODEEXISTS = -110
    NOTEMPTY = -111
    SESSIONEXPIRED = -112
    INVALIDCALLBACK = -113
    INVALIDACL = -114
    AUTHFAILED = -115
    SESSIONMOVED = -118
    NOTREADONLY = -119
    EPHEMERALONLOCALSESSION = -120
    NOWATCHER = -121
    REQUESTTIMEOUT = -122
    RECONFIGDISABLED = -123
    SESSIONCLOSEDREQUIRESASLAUTH = -124
    QUOTAEXCEEDED = -125
    THROTTLEDOP = -127


class EventType(IntEnum):
    """Watcher.Event.EventType."""

    None_ = -1
    NodeCreated = 1
    NodeDeleted = 2
    NodeDataChanged = 3
    NodeChildrenChanged = 4
    DataWatchRemoved = 5
    ChildWatchRemoved = 6
    PersistentWatchRemoved = 7


class KeeperState(IntEnum):
    """Watcher.Event.KeeperState."""

    Unknown = -1
    Disconnected = 0
    NoSyncConnected = 1
    SyncConnected = 3
    AuthFailed = 4
    ConnectedReadOnly = 5
    SaslAuthenticated = 6
    Expired = -112
    Closed = 7


class CreateMode(IntEnum):
    PERSISTENT = 0
    EPHEMERAL = 1
    PERSISTENT_SEQUENTIAL = 2
    EPHEMERAL_SEQUENTIAL = 3
    CONTAINER = 4
    PERSISTENT_WITH_TTL = 5
    PERSISTENT_SEQUENTIAL_WITH_TTL = 6


class Perms(IntFlag):
    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


class WatcherType(IntEnum):
    """The ``type`` of checkWatches/removeWatches."""

    Children = 1
    Data = 2
    Any = 3


class AddWatchMode(IntEnum):
    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


class Xid(IntEnum):
    """Reserved xids: notifications, pings, auth and setWatches replies."""

    NOTIFICATION = -1
    PING = -2
    AUTH = -4
    SET_WATCHES = -8


MAX_BUFFER_BYTES_DEFAULT = 0xFFFFF
