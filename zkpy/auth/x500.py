"""X.500 distinguished names as Java writes and reads them, for the ``x509`` scheme.

ZooKeeper's X509AuthenticationProvider identifies a TLS client by
``certificate.getSubjectX500Principal().getName()``: the subject in Java's RFC 2253 form, and an
``x509`` ACL matches only that exact string. :func:`java_rfc2253` renders a DER-encoded Name the
same way (sun.security.x509.X500Name/RDN/AVA): RDNs last-to-first, ``+`` between the values of a
multi-valued RDN, the RFC 2253 keywords (CN, C, L, ST, O, OU, STREET, DC, UID) and the dotted OID
with ``#``-hex DER for every other attribute, Java's escaping of ``,=+<>#;"\\`` and of leading and
trailing spaces. :func:`valid_dn` is the ACL id check ZooKeeper makes with ``new
X500Principal(id)``: RFC 1779/2253/4514 syntax with Java's keyword list.
"""

from __future__ import annotations

import re

# Java's AVAKeyword table: keyword -> OID; RFC 2253 output uses the first group only.
_RFC2253_KEYWORDS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
    "2.5.4.11": "OU", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
_JAVA_KEYWORDS = {
    "CN", "C", "L", "S", "ST", "O", "OU", "T", "IP", "STREET", "DC", "DNQUALIFIER", "DNQ",
    "SURNAME", "GIVENNAME", "INITIALS", "GENERATION", "EMAIL", "EMAILADDRESS", "UID",
    "SERIALNUMBER",
}
# DER string tags Java prints as text (AVA.isDerString, non-canonical); others become #hex.
# Java decodes the value bytes of every one of them as UTF-8 (so a BMPString comes out with
# escaped NULs), and so does zkpy: the id must be the same string.
_TEXT_TAGS = {0x13, 0x14, 0x16, 0x1B, 0x1E, 0x0C}  # Printable, T61, IA5, General, BMP, UTF8
_ESCAPEES = ',=+<>#;"\\'
_PRINTABLE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]")


class DerError(ValueError):
    """The bytes are not the DER encoding of an X.500 Name."""


def _read(data: bytes, offset: int) -> tuple[int, bytes, int, int]:
    """One TLV at ``offset``: (tag, content, start of the TLV, offset after it)."""
    start = offset
    if offset + 2 > len(data):
        raise DerError("truncated DER")
    tag = data[offset]
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise DerError("bad DER length")
        length = int.from_bytes(data[offset:offset + count], "big")
        offset += count
    end = offset + length
    if end > len(data):
        raise DerError("truncated DER")
    return tag, data[offset:end], start, end


def _items(content: bytes):
    offset = 0
    while offset < len(content):
        tag, body, start, offset = _read(content, offset)
        yield tag, body, content[start:offset]


def _oid(content: bytes) -> str:
    if not content:
        raise DerError("empty OID")
    first = content[0]
    arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for byte in content[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(str(arc) for arc in arcs)


def _escape(text: str) -> str:
    out = []
    for char in text:
        if char in _ESCAPEES:
            out.append("\\" + char)
        elif char == "\x00":
            out.append("\\00")
        else:
            out.append(char)
    chars = "".join(out)
    # Leading and trailing spaces (and CRs) are escaped one by one, as Java does.
    lead = len(chars) - len(chars.lstrip(" \r"))
    trail = len(chars.rstrip(" \r"))
    return "".join(("\\" + c) if i < lead or i >= trail else c for i, c in enumerate(chars))


def _ava(oid: str, tag: int, value: bytes, whole: bytes) -> str:
    keyword = _RFC2253_KEYWORDS.get(oid)
    if keyword is None or tag not in _TEXT_TAGS:
        return f"{keyword or oid}=#{whole.hex()}"
    return f"{keyword}={_escape(value.decode('utf-8', errors='replace'))}"


def java_rfc2253(name_der: bytes) -> str:
    """``X500Principal.getName()`` of a DER-encoded Name (e.g. a certificate's subject)."""
    tag, content, _, end = _read(name_der, 0)
    if tag != 0x30 or end != len(name_der):
        raise DerError("a Name is a SEQUENCE")
    rdns = []
    for set_tag, rdn, _ in _items(content):
        if set_tag != 0x31:
            raise DerError("an RDN is a SET")
        avas = []
        for seq_tag, ava, _ in _items(rdn):
            if seq_tag != 0x30:
                raise DerError("an attribute is a SEQUENCE")
            parts = list(_items(ava))
            if len(parts) != 2 or parts[0][0] != 0x06:
                raise DerError("an attribute is an OID and a value")
            value_tag, value, whole = parts[1]
            avas.append(_ava(_oid(parts[0][1]), value_tag, value, whole))
        rdns.append("+".join(avas))
    return ",".join(reversed(rdns))


def subject_of_certificate(der: bytes) -> str:
    """The Java RFC 2253 subject of a DER certificate."""
    from cryptography import x509

    certificate = x509.load_der_x509_certificate(der)
    return java_rfc2253(certificate.subject.public_bytes())


# -- parsing, for the ACL id check -------------------------------------------------------------

_OID = re.compile(r"(?:OID\.)?[0-9]+(?:\.[0-9]+)+", re.IGNORECASE)
_HEX_VALUE = re.compile(r"#(?:[0-9A-Fa-f]{2})+")


def _split_unescaped(text: str, separators: str) -> list[str] | None:
    parts, current, quoted, index = [], [], False, 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            if index + 1 >= len(text):
                return None
            current.append(text[index:index + 2])
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        if char in separators and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    if quoted:
        return None
    parts.append("".join(current))
    return parts


def _valid_value(value: str) -> bool:
    value = value.strip(" ")
    if value.startswith("#"):
        return _HEX_VALUE.fullmatch(value) is not None
    if value.startswith('"'):
        return len(value) >= 2 and value.endswith('"') and not value.endswith('\\"')
    index = 0
    while index < len(value):
        char = value[index]
        if char == "\\":
            following = value[index + 1:index + 2]
            if following and following in _ESCAPEES + " ":
                index += 2
                continue
            if re.fullmatch(r"[0-9A-Fa-f]{2}", value[index + 1:index + 3] or ""):
                index += 3
                continue
            return False
        if char in '"<>':
            return False
        index += 1
    return True


def valid_dn(text: str) -> bool:
    """Would ``new javax.security.auth.x500.X500Principal(text)`` accept it?"""
    if text is None:
        return False
    if text.strip() == "":
        return True
    rdns = _split_unescaped(text, ",;")
    if rdns is None:
        return False
    for rdn in rdns:
        avas = _split_unescaped(rdn, "+")
        if avas is None:
            return False
        for ava in avas:
            if "=" not in ava:
                return False
            keyword, value = ava.split("=", 1)
            keyword = keyword.strip()
            if keyword.upper() not in _JAVA_KEYWORDS and not _OID.fullmatch(keyword):
                return False
            if not _valid_value(value):
                return False
    return True
