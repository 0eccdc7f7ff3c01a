"""Dynamic reconfiguration (reconfigEnabled=true): the reconfig opcode through kazoo adds and
removes members, /zookeeper/config follows, a client moves to the new members keeping its
session; unauthorised or disabled reconfig is refused as ZooKeeper refuses it. Every test runs
against the reference too."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, ReconfigDisabledError

from tests.support.servers import connect_string, ensemble, four_letter_word, start_all

SUPER_DIGEST = "super:" + base64.b64encode(hashlib.sha1(b"super:secret").digest()).decode()


def mode(member) -> str:
    for line in four_letter_word(member.port, "srvr").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return "not serving"


def wait_for(predicate, what: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def server_ids(config: bytes) -> list[int]:
    return sorted(int(line.split("=")[0].split(".")[1]) for line in config.decode().splitlines()
                  if line.startswith("server."))


@pytest.mark.parametrize("kind", ["zookeeper", "zkpy"])
def test_join_and_leave_through_kazoo(kind, tmp_path):
    members = ensemble(kind, tmp_path, 4, settings={"reconfigEnabled": "true"},
                       jvm_properties={"zookeeper.DigestAuthenticationProvider.superDigest": SUPER_DIGEST})
    joiner_line = members[0].settings["server.4"]
    for member in members[:3]:
        member.settings.pop("server.4")  # the fourth server is not in the ensemble yet
    try:
        start_all(members[:3])
        client = KazooClient(connect_string(members[:3]))
        client.start()
        assert server_ids(client.get("/zookeeper/config")[0]) == [1, 2, 3]
        with pytest.raises(NoAuthError):
            client.reconfig(joining=None, leaving="3", new_members=None)
        client.add_auth("digest", "super:secret")
        session = client.client_id
        members[3].start()
        joining = "server.4=" + joiner_line.replace(";", ":participant;")
        data, _ = client.reconfig(joining=joining, leaving=None, new_members=None)
        assert server_ids(data) == [1, 2, 3, 4]
        assert server_ids(client.get("/zookeeper/config")[0]) == [1, 2, 3, 4]
        wait_for(lambda: mode(members[3]) == "follower", "the new member to follow")
        data, _ = client.reconfig(joining=None, leaving="1", new_members=None)
        assert server_ids(data) == [2, 3, 4]
        client.set_hosts(connect_string(members[1:]))
        client.create("/after-reconfig", b"x")
        assert client.client_id == session
        for member in members[1:]:
            reader = KazooClient(member.connect_string)
            reader.start()
            reader.sync("/")
            assert reader.get("/after-reconfig")[0] == b"x"
            assert server_ids(reader.get("/zookeeper/config")[0]) == [2, 3, 4]
            reader.stop()
        client.stop()
    finally:
        for member in members:
            member.stop()


@pytest.mark.parametrize("kind", ["zookeeper", "zkpy"])
def test_reconfig_disabled_is_refused(kind, tmp_path):
    members = ensemble(kind, tmp_path, 3,
                       jvm_properties={"zookeeper.DigestAuthenticationProvider.superDigest": SUPER_DIGEST})
    try:
        start_all(members)
        client = KazooClient(connect_string(members))
        client.start()
        client.add_auth("digest", "super:secret")
        with pytest.raises(ReconfigDisabledError):
            client.reconfig(joining=None, leaving="3", new_members=None)
        client.stop()
    finally:
        for member in members:
            member.stop()


@pytest.mark.parametrize("kind", ["zookeeper", "zkpy"])
def test_curator_reconfig_api(kind, tmp_path):
    """Curator 5.4's reconfig().joining()/leaving() and getConfig() against the ensemble, with
    the super user's credentials; a client without them is refused."""
    import subprocess
    from pathlib import Path

    from tests.support import javatools

    jars = javatools.curator_classpath()
    classes = javatools.compile_java([Path(__file__).parent / "java" / "CuratorReconfig.java"], jars)
    classpath = [str(classes), *jars]

    def curator(members_, user, joining, leaving):
        command = javatools.java_command("CuratorReconfig", classpath,
                                         [connect_string(members_), user, joining, leaving],
                                         ["-Xmx256m", "-XX:TieredStopAtLevel=1"])
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    members = ensemble(kind, tmp_path, 4, settings={"reconfigEnabled": "true"},
                       jvm_properties={"zookeeper.DigestAuthenticationProvider.superDigest": SUPER_DIGEST})
    joiner_line = members[0].settings["server.4"]
    for member in members[:3]:
        member.settings.pop("server.4")
    try:
        start_all(members[:3])
        refused = curator(members[:3], "nobody:nothing", "-", "3")
        assert refused.returncode != 0 and "NoAuth" in refused.stdout, refused.stdout + refused.stderr
        members[3].start()
        joined = curator(members[:3], "super:secret",
                         "server.4=" + joiner_line.replace(";", ":participant;"), "-")
        assert joined.returncode == 0, joined.stdout + joined.stderr
        before, after = (line.split(" ", 1)[1] for line in joined.stdout.splitlines()
                         if line.startswith(("before ", "after ")))
        assert "server.4=" not in before and "server.4=" in after
        left = curator(members, "super:secret", "-", "1")
        assert left.returncode == 0, left.stdout + left.stderr
        after_leave = left.stdout.splitlines()[-1]
        assert "server.1=" not in after_leave and "server.4=" in after_leave
    finally:
        for member in members:
            member.stop()


@pytest.mark.parametrize("kind", ["zookeeper", "zkpy"])
def test_reconfig_as_super_user_set_by_a_zoo_cfg_line(kind, tmp_path):
    """kazoo's own test harness gives the super digest as the zoo.cfg line
    ``DigestAuthenticationProvider.superDigest=...``: ZooKeeper turns a zoo.cfg key it does not
    parse into the system property ``zookeeper.<key>``, so that line sets the super user."""
    members = ensemble(kind, tmp_path, 4, settings={
        "reconfigEnabled": "true", "DigestAuthenticationProvider.superDigest": SUPER_DIGEST})
    joiner_line = members[0].settings["server.4"]
    for member in members[:3]:
        member.settings.pop("server.4")  # the fourth server joins by reconfig
    try:
        start_all(members[:3])
        client = KazooClient(connect_string(members[:3]))
        client.start()
        members[3].start()
        joining = "server.4=" + joiner_line.replace(";", ":participant;")
        with pytest.raises(NoAuthError):
            client.reconfig(joining=joining, leaving=None, new_members=None)
        client.add_auth("digest", "super:secret")
        data, _ = client.reconfig(joining=joining, leaving=None, new_members=None)
        assert server_ids(data) == [1, 2, 3, 4]
        assert server_ids(client.get("/zookeeper/config")[0]) == [1, 2, 3, 4]
        client.stop()
    finally:
        for member in members:
            member.stop()
