"""etcdctl 3.4 against the reference etcd and zkpy: each scenario runs the same commands on
both, and the transcripts (command, exit status, output) must match once lease ids, member
ids, revisions and timings, which legitimately differ, are renamed in order of appearance.
"""

from __future__ import annotations

import difflib
import json
import re
import time

from tests.support.etcdservers import (Renamer, etcdctl, start_etcdctl, stop_process,
                                       without_client_warnings)

_LEASE_ID = re.compile(r"\b[0-9a-f]{16}\b")
_JSON_NUMBERS = re.compile(r'"(cluster_id|member_id|raft_term|revision|create_revision|'
                           r'mod_revision|ID|lease)":(-?\d+)')
_TOOK = re.compile(r"took = [0-9.]+[µm]?s")


class Transcript:
    """Runs etcdctl against one server and records what a user would see, normalised."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.lines: list[str] = []
        self.leases = Renamer("lease")
        self.numbers = {name: Renamer(name) for name in
                        ("cluster_id", "member_id", "raft_term", "revision", "ID", "lease")}

    def normalise(self, text: str) -> str:
        text = without_client_warnings(text)
        text = _LEASE_ID.sub(lambda m: self.leases(m.group(0)), text)
        text = _TOOK.sub("took = <t>", text)

        def number(match):
            name = match.group(1)
            renamer = self.numbers["revision" if name.endswith("revision") else name]
            return f'"{name}":{renamer(match.group(2))}'
        return _JSON_NUMBERS.sub(number, text)

    def run(self, *args: str, stdin: str | None = None, label: str | None = None) -> str:
        """``label`` stands for the command line where it holds a server's own revision."""
        result = etcdctl(self.endpoint, *args, stdin=stdin, check=False)
        output = self.normalise(result.stdout + result.stderr)
        shown = self.normalise(label or " ".join(args))
        self.lines.append(f"$ etcdctl {shown} -> {result.returncode}\n{output}")
        return result.stdout

    def note(self, text: str) -> None:
        self.lines.append(self.normalise(text))


def both(etcd_pair, prefix, scenario):
    """Run ``scenario(transcript, prefix)`` on etcd, then zkpy; the transcripts must match."""
    transcripts = {}
    for kind, server in etcd_pair.items():
        transcript = Transcript(server.endpoint)
        scenario(transcript, prefix)
        transcripts[kind] = "\n".join(transcript.lines)
    if transcripts["zkpy"] != transcripts["etcd"]:
        diff = difflib.unified_diff(transcripts["etcd"].splitlines(),
                                    transcripts["zkpy"].splitlines(), "etcd", "zkpy", lineterm="")
        raise AssertionError("zkpy's transcript differs from etcd's:\n" + "\n".join(diff))
    return transcripts["zkpy"]


def wait_for_output(process, needle: str, timeout_s: float = 10) -> str:
    """Read a background etcdctl's output until ``needle`` appears."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"{needle!r} never appeared; saw {''.join(seen)!r}")


# -- the seed's commands ----------------------------------------------------------------------

def test_seed_put_get_watch(etcd_pair, prefix):
    def scenario(t, p):
        t.run("put", f"{p}/myapp/config", "config_data")
        t.run("get", f"{p}/myapp/config")
        watch = start_etcdctl(t.endpoint, "watch", f"{p}/myapp/", "--prefix")
        time.sleep(1.0)  # the watch is registered before the writes
        t.run("put", f"{p}/myapp/config", "config_v2")
        t.run("put", f"{p}/myapp/feature", "on")
        t.run("del", f"{p}/myapp/feature")
        time.sleep(1.0)
        t.note("watch:\n" + stop_process(watch))
        t.run("get", f"{p}/myapp/", "--prefix")
    transcript = both(etcd_pair, prefix, scenario)
    assert "DELETE" in transcript and "config_v2" in transcript


def test_seed_lease_lock_elect(etcd_pair, prefix):
    def scenario(t, p):
        granted = t.run("lease", "grant", "10")
        lease = granted.split()[1]
        t.run("put", f"{p}/svc/a", "up", f"--lease={lease}")
        t.run("lease", "timetolive", lease, "--keys")
        t.run("lock", f"{p}/mylock", "echo", "Performing critical section")
        # The seed's `lock --lease=ID`: etcdctl 3.4 has no such flag, on either server.
        t.run("lock", f"--lease={lease}", f"{p}/mylock", "echo", "Performing critical section")
        t.run("lease", "revoke", lease)
        t.run("get", f"{p}/svc/", "--prefix")
        t.run("lease", "timetolive", lease)
        leader = start_etcdctl(t.endpoint, "elect", f"{p}/election", "candidate-a")
        t.note("elect:\n" + re.sub(r"/[0-9a-f]+\n", "/<key>\n",
                                   wait_for_output(leader, "candidate-a")))
        observer = start_etcdctl(t.endpoint, "elect", "-l", f"{p}/election")
        t.note("observe:\n" + re.sub(r"/[0-9a-f]+\n", "/<key>\n",
                                     wait_for_output(observer, "candidate-a")))
        stop_process(observer)
        stop_process(leader)
    both(etcd_pair, prefix, scenario)


def test_lock_excludes_second_holder(etcd_pair, prefix):
    def scenario(t, p):
        holder = start_etcdctl(t.endpoint, "lock", f"{p}/excl")
        t.note("holder:\n" + re.sub(r"/[0-9a-f]+\n", "/<key>\n", wait_for_output(holder, "excl")))
        waiter = start_etcdctl(t.endpoint, "lock", f"{p}/excl", "echo", "second holder ran")
        time.sleep(1.5)
        t.note(f"waiter still waiting: {waiter.poll() is None}")
        stop_process(holder)  # Ctrl-C releases the lock
        out, _ = waiter.communicate(timeout=15)
        t.note("waiter:\n" + out)
    both(etcd_pair, prefix, scenario)


# -- kv -----------------------------------------------------------------------------------------

def test_get_options(etcd_pair, prefix):
    def scenario(t, p):
        for key, value in (("b", "2"), ("a", "1"), ("c", "3"), ("d", "4")):
            t.run("put", f"{p}/k/{key}", value)
        t.run("put", f"{p}/k/a", "1b")
        t.run("get", f"{p}/k/", "--prefix", "--limit=2")
        t.run("get", f"{p}/k/", "--prefix", "--sort-by=MODIFY", "--order=DESCEND")
        t.run("get", f"{p}/k/", "--prefix", "--sort-by=VALUE", "--order=ASCEND")
        t.run("get", f"{p}/k/", "--prefix", "--sort-by=CREATE", "--order=DESCEND", "--limit=1")
        t.run("get", f"{p}/k/", "--prefix", "--keys-only")
        t.run("get", f"{p}/k/", "--prefix", "--print-value-only")
        t.run("get", f"{p}/k/b", f"{p}/k/d")  # a [b, d) range
        t.run("get", f"{p}/k/c", "--from-key", "--keys-only", "--limit=2")
        t.run("get", f"{p}/k/a", "-w", "json")
        t.run("get", f"{p}/k/missing")
        t.run("get", f"{p}/k/", "--prefix", "--rev=1000000000000000", "-w", "simple")
    both(etcd_pair, prefix, scenario)


def test_put_and_delete_options(etcd_pair, prefix):
    def scenario(t, p):
        t.run("put", f"{p}/x", "v1")
        t.run("put", f"{p}/x", "v2", "--prev-kv")
        t.run("put", f"{p}/x", "--ignore-value")
        t.run("put", f"{p}/missing", "--ignore-value")
        t.run("get", f"{p}/x", "-w", "json")
        t.run("put", f"{p}/y", "v", "--lease=1234abcd")
        t.run("put", f"{p}/z/1", "a")
        t.run("put", f"{p}/z/2", "b")
        t.run("del", f"{p}/z/", "--prefix", "--prev-kv")
        t.run("del", f"{p}/x")
        t.run("del", f"{p}/x")
        t.run("put", "", "empty-key")
        t.run("put", f"{p}/bin\x01ary/\u00e9", "weird key")
        t.run("get", f"{p}/bin\x01ary/\u00e9", "--hex")
    both(etcd_pair, prefix, scenario)


def test_txn(etcd_pair, prefix):
    def scenario(t, p):
        t.run("put", f"{p}/cfg", "old")
        t.run("txn", stdin=(f'value("{p}/cfg") = "old"\n\n'
                            f'put {p}/cfg "new"\nput {p}/audit "changed"\n\n'
                            f'get {p}/cfg\n\n'))
        t.run("txn", stdin=(f'value("{p}/cfg") = "old"\n\n'
                            f'put {p}/cfg "newer"\n\n'
                            f'get {p}/cfg\n\n'))
        t.run("txn", "-w", "json", stdin=(f'create("{p}/absent") = "0"\n\n'
                                          f'put {p}/absent "created"\n\n\n'))
        t.run("txn", stdin=(f'mod("{p}/absent") > "0"\nversion("{p}/cfg") = "2"\n\n'
                            f'del {p}/absent\nget {p}/cfg\n\n\n'))
        t.run("txn", stdin=(f'\n\nput {p}/dup "1"\nput {p}/dup "2"\n\n\n'))
        t.run("get", f"{p}/", "--prefix")
    both(etcd_pair, prefix, scenario)


def test_compaction(etcd_pair, prefix):
    def scenario(t, p):
        first = json.loads(etcdctl(t.endpoint, "put", f"{p}/c", "1", "-w", "json").stdout)
        rev = first["header"]["revision"]
        t.run("put", f"{p}/c", "2")
        t.run("put", f"{p}/c", "3")
        t.run("get", f"{p}/c", f"--rev={rev}", label="get c --rev=<first put>")
        compacted = etcdctl(t.endpoint, "compaction", str(rev + 1)).stdout
        t.note(compacted.replace(str(rev + 1), "<first put + 1>"))
        t.run("get", f"{p}/c", f"--rev={rev}", label="get c --rev=<first put>")
        t.run("compaction", str(rev), label="compaction <first put>")  # compacted already
        t.run("get", f"{p}/c")
        watch = start_etcdctl(t.endpoint, "watch", f"{p}/c", f"--rev={rev}")
        t.note("watch from a compacted revision:\n" + stop_process(watch, timeout_s=3))
    both(etcd_pair, prefix, scenario)


def test_watch_from_revision_with_prev_kv(etcd_pair, prefix):
    def scenario(t, p):
        first = json.loads(etcdctl(t.endpoint, "put", f"{p}/w/a", "1", "-w", "json").stdout)
        rev = first["header"]["revision"]
        t.run("put", f"{p}/w/a", "2")
        t.run("put", f"{p}/w/b", "3")
        t.run("del", f"{p}/w/a")
        watch = start_etcdctl(t.endpoint, "watch", f"{p}/w/", "--prefix", f"--rev={rev}",
                              "--prev-kv")
        time.sleep(1.5)
        t.note("history:\n" + stop_process(watch))
    both(etcd_pair, prefix, scenario)


# -- cluster and maintenance ------------------------------------------------------------------

def _table_shape(text: str) -> str:
    """The columns of etcdctl's simple output, values that differ between servers named."""
    return re.sub(r"\d+(\.\d+)? ?[kMG]?B", "<size>", text)


def test_member_and_endpoint(etcd_pair, prefix):
    outputs = {}
    for kind, server in etcd_pair.items():
        member = etcdctl(server.endpoint, "member", "list", "-w", "json").stdout
        status = etcdctl(server.endpoint, "endpoint", "status", "-w", "json").stdout
        health = etcdctl(server.endpoint, "endpoint", "health").stdout + \
            etcdctl(server.endpoint, "endpoint", "health").stderr
        outputs[kind] = (json.loads(member), json.loads(status), health)
    for kind, (member, status, health) in outputs.items():
        endpoint = etcd_pair[kind].endpoint
        assert len(member["members"]) == 1
        only = member["members"][0]
        assert only["clientURLs"] == [f"http://{endpoint}"], kind
        assert only["ID"] == member["header"]["member_id"], kind
        entry = status[0]
        assert entry["Endpoint"] == endpoint
        assert entry["Status"]["leader"] == only["ID"], kind
        assert entry["Status"]["raftIndex"] >= 1 and entry["Status"]["dbSize"] > 0, kind
        assert entry["Status"]["version"].startswith("3.4"), kind
        assert re.fullmatch(rf"{re.escape(endpoint)} is healthy: successfully committed "
                            r"proposal: took = \S+\n", health), (kind, health)
    assert set(outputs["zkpy"][1][0]["Status"]) >= set(outputs["etcd"][1][0]["Status"]) - {"errors"}


def test_lease_and_maintenance_commands(etcd_pair, prefix):
    def scenario(t, p):
        lease = t.run("lease", "grant", "20").split()[1]
        t.run("lease", "keep-alive", "--once", lease)
        t.run("lease", "timetolive", lease)
        listed = etcdctl(t.endpoint, "lease", "list").stdout
        t.note(f"listed: {lease in listed}")
        t.run("lease", "revoke", lease)
        t.run("lease", "keep-alive", "--once", lease)
        t.run("lease", "revoke", lease)
        t.run("lease", "grant", "1")  # below the minimum TTL
        t.run("alarm", "list")
        t.note(etcdctl(t.endpoint, "defrag").stdout.replace(t.endpoint, "<endpoint>"))
    both(etcd_pair, prefix, scenario)
