"""How a znode's ephemeralOwner encodes its kind (ZooKeeper's EphemeralType).

A session id marks an ordinary ephemeral; Long.MIN_VALUE marks a container; 0xFF in the top byte
marks a TTL node whose TTL (ms) is in the low 40 bits. Clients see these values in Stat.
"""

CONTAINER_OWNER = -0x8000000000000000
TTL_MASK_BITS = 0xFF00000000000000
MAX_TTL_MS = 0x000000FFFFFFFFFF


def ttl_owner(ttl_ms: int) -> int:
    value = TTL_MASK_BITS | ttl_ms
    return value - (1 << 64)


def ttl_of(owner: int) -> int:
    """The TTL of a TTL node's owner value, or 0 if ``owner`` is not a TTL marker."""
    if owner >= 0 or owner == CONTAINER_OWNER:
        return 0
    unsigned = owner + (1 << 64)
    if unsigned & TTL_MASK_BITS != TTL_MASK_BITS:
        return 0
    return unsigned & MAX_TTL_MS


def is_session_owner(owner: int) -> bool:
    """True when ``owner`` is a real session (a normal ephemeral)."""
    return owner != 0 and owner != CONTAINER_OWNER and ttl_of(owner) == 0
