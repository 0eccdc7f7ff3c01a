"""zoo.cfg read as ZooKeeper reads it: java.util.Properties' grammar, and QuorumPeerConfig's rule
that a key it does not parse itself is the system property ``zookeeper.<key>`` (winning over a
-D value of that name). One test per family of properties zkpy reads."""

from __future__ import annotations

import pytest

from zkpy import config


def build(text: str, properties: dict[str, str] | None = None) -> config.ServerConfig:
    return config.build_config(config.parse_zoo_cfg(text), properties)


# --- java.util.Properties grammar ----------------------------------------------------------------

def test_separators_equals_colon_and_white_space():
    assert config.parse_zoo_cfg("tickTime=100\ninitLimit: 7\nsyncLimit 3\n  clientPort\t=  2222 \n") \
        == {"tickTime": "100", "initLimit": "7", "syncLimit": "3", "clientPort": "2222"}


def test_continuation_lines_join_without_leading_white_space():
    parsed = config.parse_zoo_cfg("4lw.commands.whitelist=srvr,\\\n    mntr,\\\n    ruok\n")
    assert parsed == {"4lw.commands.whitelist": "srvr,mntr,ruok"}
    assert build("4lw.commands.whitelist=srvr,\\\n    mntr\n").four_letter_words == {"srvr", "mntr"}


def test_escapes_in_keys_and_values():
    parsed = config.parse_zoo_cfg("my\\ key\\:x\\=y=a\\tb\\u0041\\\\c\nk2=\\#not a comment\n")
    assert parsed == {"my key:x=y": "a\tbA\\c", "k2": "#not a comment"}


def test_comments_blank_lines_and_a_key_alone():
    parsed = config.parse_zoo_cfg("# comment\n! also a comment\n\n   \nlonely\n")
    assert parsed == {"lonely": ""}


def test_the_last_of_two_equal_keys_wins():
    assert build("tickTime=100\ntickTime=300\n").tick_ms == 300


def test_a_file_is_read_as_iso_8859_1(tmp_path):
    path = tmp_path / "zoo.cfg"
    path.write_bytes(b"dataDir=/tmp/caf\xe9\nclientPort=2181\n")
    assert config.load(path).data_dir == "/tmp/caf\u00e9"


def test_invalid_value_after_a_continuation_names_the_key():
    with pytest.raises(config.ConfigError, match="tickTime"):
        build("tickTime=1\\\n  x\n")


# --- zoo.cfg keys as zookeeper.<key> properties ----------------------------------------------------

def test_super_digest_from_the_digest_provider_key():
    digest = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
    built = build(f"DigestAuthenticationProvider.superDigest={digest}\n")
    assert built.super_digest == digest
    assert "DigestAuthenticationProvider.superDigest" in built.keys_as_properties
    assert ("zookeeper.DigestAuthenticationProvider.superDigest", digest) in built.system_properties


@pytest.mark.parametrize("line, field, value", [
    ("snapCount=50", "snap_count", 50),
    ("extendedTypesEnabled=true", "extended_types_enabled", True),
    ("globalOutstandingLimit=77", "global_outstanding_limit", 77),
    ("admin.serverPort=9999", "admin_server_port", 9999),
    ("admin.enableServer=false", "admin_enable_server", False),
    ("4lw.commands.whitelist=ruok", "four_letter_words", frozenset({"ruok"})),
])
def test_server_settings_read_as_properties(line, field, value):
    built = build(line + "\n")
    assert getattr(built, field) == value
    assert line.split("=")[0] in built.keys_as_properties


def test_zoo_cfg_key_wins_over_the_property_it_becomes():
    built = build("snapCount=50\n", {"zookeeper.snapCount": "9"})
    assert built.snap_count == 50
    assert dict(built.system_properties)["zookeeper.snapCount"] == "50"
    assert build("\n", {"zookeeper.snapCount": "9"}).snap_count == 9


def test_sasl_and_auth_provider_keys():
    built = build("authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n"
                  "superUser=admin\nallowSaslFailedClients=true\n")
    assert built.auth.schemes == {"sasl"}
    assert built.auth.sasl_super_users == ("admin",)
    assert built.auth.sasl_allow_failed_clients is True
    assert {"authProvider.1", "superUser", "allowSaslFailedClients"} <= set(built.keys_as_properties)


def test_client_tls_keys(tmp_path):
    built = build(f"secureClientPort=2281\nssl.keyStore.location={tmp_path}/k.p12\n"
                  "ssl.keyStore.password=pw\nssl.clientAuth=want\n")
    assert built.tls.keystore_location == f"{tmp_path}/k.p12"
    assert built.tls.keystore_type == "PKCS12"
    assert built.tls.client_auth == "want"
    assert "ssl.keyStore.location" in built.keys_as_properties


def test_quorum_tls_keys(tmp_path):
    built = build(f"sslQuorum=true\nssl.quorum.keyStore.location={tmp_path}/q.jks\n"
                  "ssl.quorum.keyStore.password=pw\n")
    assert built.quorum_tls.keystore_location == f"{tmp_path}/q.jks"
    assert built.quorum_tls.keystore_type == "JKS"
    assert "ssl.quorum.keyStore.location" in built.keys_as_properties
    assert "sslQuorum" not in built.keys_as_properties  # QuorumPeerConfig parses it itself


def test_a_property_zkpy_does_not_read_is_logged_as_unused():
    built = build("enforceQuota=true\ndigest.enabled=false\npreAllocSize=65536\n")
    assert set(built.ignored) == {"enforceQuota", "digest.enabled", "preAllocSize"}
    assert built.keys_as_properties == ()
    assert dict(built.system_properties)["zookeeper.enforceQuota"] == "true"


def test_keys_quorum_peer_config_parses_stay_zoo_cfg_keys():
    built = build("tickTime=100\nelectionAlg=3\nserver.1=127.0.0.1:2888:3888\n")
    assert built.tick_ms == 100
    assert built.keys_as_properties == ()
    assert built.ignored == ("electionAlg",)
    assert "zookeeper.tickTime" not in dict(built.system_properties)
