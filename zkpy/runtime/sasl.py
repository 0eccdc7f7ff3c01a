"""SASL at startup: the JAAS ``Server`` section as ZooKeeper's ServerCnxnFactory reads it.

``java.security.auth.login.config`` names the JAAS file (a -D property, or in JVMFLAGS /
SERVER_JVMFLAGS); ``zookeeper.sasl.serverconfig`` names the section (default ``Server``). As
ZooKeeper (configureSaslLogin, SaslServerCallbackHandler):

* no JAAS file configured, or no such section in it: no SASL; clients' SASL packets get empty
  answers and their connections stay unauthenticated;
* a JAAS file that cannot be read: the server does not start;
* otherwise every ``user_<name>="<password>"`` option of the section's login modules is a
  DIGEST-MD5 user.

Kerberos (GSSAPI, ``Krb5LoginModule``) is not something zkpy does: such a module is logged and
left out, and only DIGEST-MD5 is offered.
"""

from __future__ import annotations

import structlog

from zkpy.auth import jaas
from zkpy.auth.digest_md5 import SaslAuthenticator
from zkpy.config import ServerConfig

log = structlog.get_logger("zkpy.sasl")

DIGEST_LOGIN_MODULE = "org.apache.zookeeper.server.auth.DigestLoginModule"
USER_PREFIX = "user_"


class SaslSetupError(Exception):
    """The JAAS configuration cannot be used; the server does not start."""


def authenticator(config: ServerConfig) -> SaslAuthenticator | None:
    auth = config.auth
    if not auth.jaas_config:
        return None
    properties = dict(config.system_properties)
    try:
        sections = jaas.load(auth.jaas_config, properties)
    except jaas.JaasError as error:
        raise SaslSetupError(f"No JAAS configuration section named '{auth.sasl_login_context}' "
                             f"could be read: {error}") from None
    modules = sections.get(auth.sasl_login_context)
    if modules is None:
        log.info("no JAAS section for the server; SASL is off", jaas=auth.jaas_config,
                 section=auth.sasl_login_context)
        return None
    users: dict[str, str] = {}
    for module in modules:
        if module.class_name.endswith("Krb5LoginModule"):
            log.warning("Kerberos (GSSAPI) is not supported by zkpy; this login module is left "
                        "out and clients can use SASL DIGEST-MD5 only",
                        module=module.class_name, section=auth.sasl_login_context)
        elif module.class_name != DIGEST_LOGIN_MODULE:
            log.warning("JAAS login module zkpy does not have; its user_ options are still "
                        "DIGEST-MD5 users", module=module.class_name)
        for key, value in module.options.items():
            if key.startswith(USER_PREFIX):
                users[key[len(USER_PREFIX):]] = value
    log.info("SASL DIGEST-MD5 enabled", section=auth.sasl_login_context, users=len(users),
             sasl_scheme_acls="sasl" in auth.schemes)
    return SaslAuthenticator(users, super_password=auth.sasl_super_password,
                             super_users=auth.sasl_super_users,
                             allow_failed_clients=auth.sasl_allow_failed_clients)
