"""ACL checks and the authentication schemes: world, auth, digest, ip, super, and sasl and x509
when their providers are configured (an :class:`AclChecker` per server).

``AuthInfo`` is what a connection has proved: a tuple of ``Id``s. Every connection holds
``ip:<address>``; ``addauth digest user:password`` adds ``digest:user:<base64 sha1>``; a
connection that authenticates as the configured super digest is ``super``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re

from jute import records as r
from zkpy.auth.x500 import valid_dn

SUPER = r.Id("super", "")


def digest_of(user_password: str) -> str:
    """ZooKeeper's DigestAuthenticationProvider.generateDigest: user:base64(sha1(user:pw))."""
    user = user_password.split(":", 1)[0]
    hashed = hashlib.sha1(user_password.encode()).digest()
    return f"{user}:{base64.b64encode(hashed).decode()}"


def _ip_matches(client_ip: str, expression: str) -> bool:
    try:
        if "/" in expression:
            return ipaddress.ip_address(client_ip) in ipaddress.ip_network(expression, strict=False)
        return ipaddress.ip_address(client_ip) == ipaddress.ip_address(expression)
    except ValueError:
        return False


def _valid_ip_expression(expression: str) -> bool:
    try:
        if "/" in expression:
            ipaddress.ip_network(expression, strict=False)
        else:
            ipaddress.ip_address(expression)
        return True
    except ValueError:
        return False


def _valid_kerberos_name(name: str) -> bool:
    """SASLAuthenticationProvider.isValid: new KerberosName(id) does not throw."""
    return re.fullmatch(r"([^/@]*)(/([^/@]*))?@([^/@]*)", name) is not None or "@" not in name


def is_super(auth_info) -> bool:
    return any(a.scheme == "super" for a in auth_info)


def _java_split(text: str, separator: str) -> list[str]:
    """String.split as Java does it: trailing empty strings are dropped."""
    parts = text.split(separator)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


_STATIC_SCHEMES = frozenset(("world", "digest", "ip"))
_FIXED_ACLS_LIMIT = 4096
_MISSING = object()


class AclChecker:
    """ZooKeeper's ACL checks with the authentication providers one server configured.

    The sasl and x509 providers exist only when configured, as ZooKeeper's ProviderRegistry
    loads them at start-up (zookeeper.authProvider.N, and secureClientPort for x509): without
    one, ACL entries of its scheme match nobody and are invalid. Each server (each simulated
    member too) has its own checker; nothing here is shared between them."""

    __slots__ = ("_matchers", "_validators", "authenticated_schemes", "_fixed_acls",
                 "_last_fixed")

    def __init__(self, schemes=frozenset(), x509_super_user: str | None = None,
                 sasl_any_user: str | None = None) -> None:
        self._matchers: dict = {}
        self._validators: dict = {}
        if "sasl" in schemes:
            def sasl_matches(auth_id: str, acl_id: str) -> bool:
                return auth_id == "super" or auth_id == acl_id or (
                    sasl_any_user is not None and acl_id == sasl_any_user)
            self._matchers["sasl"] = sasl_matches
            self._validators["sasl"] = _valid_kerberos_name
        if "x509" in schemes:
            def x509_matches(auth_id: str, acl_id: str) -> bool:
                return auth_id == acl_id or (x509_super_user is not None and auth_id == x509_super_user)
            self._matchers["x509"] = x509_matches
            self._validators["x509"] = valid_dn
        # Schemes usable by an ``auth`` ACL entry: digest and the configured providers.
        self.authenticated_schemes = frozenset(("digest", *self._validators))
        # ACL lists whose validity cannot depend on the connection or the configuration
        # (world, digest, ip), checked once; and the last one answered, by identity: the create
        # decoder hands the same tuple for the same ACL bytes (zkpy.tree.txncodec), and hashing
        # it costs more than the check.
        self._fixed_acls: dict[tuple, tuple | None] = {}
        self._last_fixed: tuple = (object(), None)

    def id_matches(self, auth: r.Id, acl_id: r.Id) -> bool:
        scheme = auth.scheme
        if scheme != acl_id.scheme:
            return False
        if scheme == "ip":
            return _ip_matches(auth.id, acl_id.id)
        if scheme == "sasl" or scheme == "x509":
            matcher = self._matchers.get(scheme)
            return matcher is not None and matcher(auth.id, acl_id.id)
        return auth.id == acl_id.id

    def has_permission(self, acl, perm: int, auth_info) -> bool:
        """ZooKeeper's checkACL: no ACL, a super user, or any ACL entry with one of
        ``perm``'s bits that matches one of the connection's ids."""
        if not acl:
            return True
        for entry in acl:
            if not entry.perms & perm:
                continue
            acl_id = entry.id
            if acl_id.scheme == "world" and acl_id.id == "anyone":
                return True
            for auth in auth_info:
                if self.id_matches(auth, acl_id):
                    return True
        return is_super(auth_info)

    def valid_acl_id(self, acl_id: r.Id) -> bool:
        scheme = acl_id.scheme
        if scheme == "world":
            return acl_id.id == "anyone"
        if scheme == "digest":
            return acl_id.id is not None and len(_java_split(acl_id.id, ":")) == 2
        if scheme == "ip":
            return acl_id.id is not None and _valid_ip_expression(acl_id.id)
        validator = self._validators.get(scheme)
        return validator is not None and acl_id.id is not None and validator(acl_id.id)

    def fixup_acl(self, acl, auth_info) -> tuple | None:
        """Expand ``auth`` entries to the connection's authenticated ids; None means
        InvalidACL. Most creates carry one of a few static ACL lists, remembered once checked."""
        last = self._last_fixed
        if acl is last[0]:
            return last[1]
        if not acl:
            return None
        key = tuple(acl)
        known = self._fixed_acls.get(key, _MISSING)
        if known is not _MISSING:
            if key is acl:
                self._last_fixed = (acl, known)
            return known
        result = self._fixup_acl(acl, auth_info)
        if len(self._fixed_acls) < _FIXED_ACLS_LIMIT and all(
                e.id is not None and e.id.scheme in _STATIC_SCHEMES for e in acl):
            self._fixed_acls[key] = result
        return result

    def _fixup_acl(self, acl, auth_info) -> tuple | None:
        result: list = []
        for entry in acl:
            if entry.id is None or entry.id.scheme is None:
                return None
            if entry.id.scheme == "auth":
                added = False
                for auth in auth_info:
                    if auth.scheme in self.authenticated_schemes:
                        result.append(r.ACL(entry.perms, auth))
                        added = True
                if not added:
                    return None
            elif self.valid_acl_id(entry.id):
                result.append(entry)
            else:
                return None
        # ZooKeeper drops duplicate entries, keeping the first.
        unique: list = []
        for entry in result:
            if entry not in unique:
                unique.append(entry)
        return tuple(unique)

