"""The server side of SASL DIGEST-MD5 (RFC 2831), as ZooKeeper's clients expect it.

ZooKeeper creates a DIGEST-MD5 SaslServer for protocol ``zookeeper`` and server name
``zk-sasl-md5`` (the realm, too) and checks passwords against the ``user_<name>="<password>"``
options of the JAAS ``Server`` section. The exchange has three client packets' worth of steps:

1. the client sends an empty token; the server answers a challenge (realm, nonce, qop=auth,
   charset=utf-8, algorithm=md5-sess);
2. the client answers a digest response; the server checks it against the stored password and
   answers ``rspauth=...`` proving it knows the password too; the exchange is complete and the
   connection is authenticated as the user name (ZooKeeper authorizes the authentication id,
   whatever authzid the client asked for);
3. anything after that is an error, as are a non-empty first token and every failed check.

Only the ``auth`` quality of protection is offered (no integrity or confidentiality layer), as
ZooKeeper's server offers by default. Failures raise :class:`SaslError` with Java's wording.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

REALM = "zk-sasl-md5"
PROTOCOL = "zookeeper"
DIGEST_URI = f"{PROTOCOL}/{REALM}"


class SaslError(Exception):
    """The client failed to authenticate (javax.security.sasl.SaslException)."""


_DIRECTIVE = re.compile(rb'\s*([A-Za-z0-9\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,]*?))\s*(?:,|$)', re.DOTALL)
_ONCE = ("username", "realm", "nonce", "cnonce", "nc", "qop", "digest-uri", "response",
         "charset", "maxbuf", "cipher", "authzid")


def parse_directives(data: bytes) -> dict[str, bytes]:
    """``name=value`` / ``name="quoted"`` directives separated by commas (RFC 2831 2.1.2)."""
    result: dict[str, bytes] = {}
    position = 0
    data = data.strip()
    while position < len(data):
        if data[position:position + 1] in (b",", b" ", b"\t"):
            position += 1
            continue
        match = _DIRECTIVE.match(data, position)
        if match is None or match.end() == position:
            raise SaslError("DIGEST-MD5: digest response format violation. "
                            f"Unparsable directive at offset {position}")
        name = match.group(1).decode("ascii").lower()
        if match.group(2) is not None:
            value = re.sub(rb"\\(.)", rb"\1", match.group(2), flags=re.DOTALL)
        else:
            value = match.group(3)
        if name in result and name in _ONCE:
            raise SaslError(f"DIGEST-MD5: digest response format violation. Multiple {name} "
                            "directives")
        result[name] = value
        position = match.end()
    return result


def _to_bytes(text: str) -> bytes:
    """RFC 2831 with charset=utf-8: ISO-8859-1 when every character fits, else UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def _hex_md5(data: bytes) -> bytes:
    return hashlib.md5(data).hexdigest().encode("ascii")


def response_value(username: str, realm: str, password: str, nonce: bytes, cnonce: bytes,
                   nc: bytes, qop: bytes, digest_uri: bytes, authzid: bytes | None,
                   client: bool) -> bytes:
    """The ``response`` (client=True) or ``rspauth`` (client=False) value, RFC 2831 2.1.2.1."""
    user_hash = _md5(_to_bytes(username) + b":" + _to_bytes(realm) + b":" + _to_bytes(password))
    a1 = user_hash + b":" + nonce + b":" + cnonce
    if authzid:
        a1 += b":" + authzid
    a2 = (b"AUTHENTICATE:" if client else b":") + digest_uri
    return _hex_md5(_hex_md5(a1) + b":" + nonce + b":" + nc + b":" + cnonce + b":" + qop + b":"
                    + _hex_md5(a2))


class DigestMD5Server:
    """One connection's DIGEST-MD5 exchange. ``evaluate(token)`` returns the next server token;
    ``complete`` and ``authorization_id`` tell the outcome."""

    def __init__(self, password_of, nonce: bytes | None = None) -> None:
        self._password_of = password_of
        self._nonce = nonce or base64.b64encode(os.urandom(24))
        self._step = 1
        self.complete = False
        self.authorization_id: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        step, self._step = self._step, -1  # any failure leaves the exchange unusable
        if step == 1:
            if token:
                raise SaslError("DIGEST-MD5 must not have an initial response")
            self._step = 2
            return (f'realm="{REALM}",nonce="'.encode() + self._nonce
                    + b'",qop="auth",charset=utf-8,algorithm=md5-sess')
        if step == 2:
            return self._check_response(token)
        raise SaslError("DIGEST-MD5: Server at illegal state")

    def _check_response(self, token: bytes) -> bytes:
        values = parse_directives(token)
        charset = values.get("charset")
        if charset is not None and charset.lower() != b"utf-8":
            raise SaslError("DIGEST-MD5: digest response format violation. Incompatible charset "
                            "value: " + charset.decode("latin-1"))
        encoding = "utf-8" if charset is not None else "latin-1"

        def text(name: str) -> str | None:
            value = values.get(name)
            return None if value is None else value.decode(encoding, errors="replace")

        username = text("username")
        if username is None:
            raise SaslError("DIGEST-MD5: digest response format violation. Missing username.")
        realm = text("realm") or ""
        if realm != REALM:
            raise SaslError("DIGEST-MD5: digest response format violation. Nonexistent realm: "
                            + realm)
        if values.get("nonce") != self._nonce:
            raise SaslError("DIGEST-MD5: digest response format violation. Mismatched nonce.")
        cnonce = values.get("cnonce")
        if not cnonce:
            raise SaslError("DIGEST-MD5: digest response format violation. Missing cnonce.")
        nc = values.get("nc", b"")
        if not re.fullmatch(rb"[0-9A-Fa-f]{8}", nc) or int(nc, 16) != 1:
            raise SaslError("DIGEST-MD5: digest response format violation. Nonce count does not "
                            "match: " + nc.decode("latin-1"))
        qop = values.get("qop", b"auth")
        if qop != b"auth":
            raise SaslError("DIGEST-MD5: digest response format violation. Invalid QOP: "
                            + qop.decode("latin-1"))
        digest_uri = values.get("digest-uri")
        if digest_uri is None:
            raise SaslError("DIGEST-MD5: digest response format violation. Missing digest-uri.")
        if digest_uri.decode(encoding, errors="replace").lower() != DIGEST_URI.lower():
            raise SaslError("DIGEST-MD5: digest response format violation. Mismatched URI: "
                            + digest_uri.decode(encoding, errors="replace")
                            + "; expecting: " + DIGEST_URI)
        response = values.get("response", b"")
        if not re.fullmatch(rb"[0-9A-Fa-f]{32}", response):
            raise SaslError("DIGEST-MD5: digest response format violation. Missing or malformed "
                            "response.")
        password = self._password_of(username)
        if password is None:
            raise SaslError(f"DIGEST-MD5: cannot acquire password for {username} in realm : "
                            f"{realm}")
        authzid = values.get("authzid")
        expected = response_value(username, realm, password, self._nonce, cnonce, nc, qop,
                                  digest_uri, authzid, client=True)
        if not hmac.compare_digest(expected, response.lower()):
            raise SaslError("DIGEST-MD5: digest response format violation. Mismatched "
                            "response.")
        rspauth = response_value(username, realm, password, self._nonce, cnonce, nc, qop,
                                 digest_uri, authzid, client=False)
        self.complete = True
        # ZooKeeper's SaslServerCallbackHandler authorizes the authentication id, canonicalized
        # as a Kerberos name; a DIGEST user name (no '@', or user@realm without rules for it)
        # comes through unchanged.
        self.authorization_id = username
        return b"rspauth=" + rspauth


class SaslAuthenticator:
    """What the server knows for SASL: the DIGEST-MD5 users of the JAAS Server section and
    ZooKeeper's SASL system properties. ``exchange()`` starts one connection's negotiation."""

    def __init__(self, users: dict[str, str], super_password: str | None = None,
                 super_users: tuple = (), allow_failed_clients: bool = False) -> None:
        self.users = dict(users)
        self.super_password = super_password
        self.super_users = frozenset(super_users)
        self.allow_failed_clients = allow_failed_clients

    def password_of(self, username: str) -> str | None:
        # As SaslServerCallbackHandler: a user must be in the JAAS section; "super" then takes
        # zookeeper.SASLAuthenticationProvider.superPassword when that is set.
        if username not in self.users:
            return None
        if username == "super" and self.super_password is not None:
            return self.super_password
        return self.users[username]

    def exchange(self) -> DigestMD5Server:
        return DigestMD5Server(self.password_of)

    def is_super(self, authorization_id: str) -> bool:
        return bool(authorization_id) and authorization_id in self.super_users
