"""Four-letter words: the reference ZooKeeper and zkpy side by side.

Both servers get the same workload (raw clients, so every packet is the same), then every word
is asked of both in the same order and the answers are compared by structure: the same lines
and labels in the same order, values in the same format, and equal values wherever they do not
depend on timing, the JVM or the host (node, watch, ephemeral and session counts, zxids,
per-connection packet counts, last operations). Session ids are normalised to the clients that
own them; HashMap-ordered listings (wchc, wchp, dump, cons) are compared as sets. The launcher
whitelists every word ("*").
"""

from __future__ import annotations

import re
import time

from jute.constants import AddWatchMode, CreateMode
from tests.support.servers import four_letter_word

JAVA_DATE = "%a %b %d %H:%M:%S %Z %Y"
INT = r"-?\d+"
HEX = r"0x[0-9a-f]+"
DOUBLE = r"(0|[1-9]\d*)\.(0|\d{0,3}[1-9])"  # Java's Double.toString of a rounded latency: 0.0, 1.4286

SRVR_LINES = [
    ("Zookeeper version", r"3\.8\.0-.+, built on \d{4}-\d\d-\d\d \d\d:\d\d UTC"),
    ("Latency min/avg/max", rf"{INT}/{DOUBLE}/{INT}"),
    ("Received", INT),
    ("Sent", INT),
    ("Connections", INT),
    ("Outstanding", INT),
    ("Zxid", HEX),
    ("Mode", "standalone"),
    ("Node count", INT),
]

# mntr keys both must print, with the format of their value.
IMPORTANT_MNTR = {
    "zk_version": r"3\.8\.0-.+",
    "zk_server_state": "standalone",
    "zk_znode_count": INT,
    "zk_watch_count": INT,
    "zk_ephemerals_count": INT,
    "zk_num_alive_connections": INT,
    "zk_outstanding_requests": INT,
    "zk_avg_latency": DOUBLE,
    "zk_max_latency": INT,
    "zk_min_latency": INT,
    "zk_packets_received": INT,
    "zk_packets_sent": INT,
    "zk_approximate_data_size": INT,
    "zk_open_file_descriptor_count": INT,
    "zk_max_file_descriptor_count": INT,
    "zk_global_sessions": INT,
    "zk_local_sessions": INT,
    "zk_uptime": INT,
}
# Equal on both after the same workload.
EQUAL_MNTR = ["zk_server_state", "zk_znode_count", "zk_watch_count", "zk_ephemerals_count",
              "zk_num_alive_connections", "zk_outstanding_requests", "zk_approximate_data_size",
              "zk_global_sessions", "zk_local_sessions"]

CONF_KEYS = ["clientPort", "secureClientPort", "dataDir", "dataDirSize", "dataLogDir",
             "dataLogSize", "tickTime", "maxClientCnxns", "minSessionTimeout",
             "maxSessionTimeout", "clientPortListenBacklog", "serverId"]

# envi lines both print (the others are java.* on one side and python.* on the other).
ENVI_COMMON = ["zookeeper.version", "host.name", "os.name", "os.arch", "os.version",
               "user.name", "user.home", "user.dir", "os.memory.free", "os.memory.max",
               "os.memory.total"]

CLIENT_LINE = re.compile(
    r"^ /127\.0\.0\.1:\d+\[(?P<interest>[01])\]\((?P<fields>[^)]*)\)$")
CONS_SESSION_KEYS = ["queued", "recved", "sent", "sid", "lop", "est", "to", "lcxid", "lzxid",
                     "lresp", "llat", "minlat", "avglat", "maxlat"]

ALL_WORDS = ["ruok", "srvr", "stat", "mntr", "conf", "cons", "crst", "srst", "envi", "wchs",
             "wchc", "wchp", "dump", "dirs", "isro", "gtmk"]


# --- helpers ------------------------------------------------------------------------------------

def ask(server, word: str) -> str:
    return four_letter_word(server.port, word, timeout_s=10)


def ask_both(pair, word: str) -> tuple[str, str]:
    reference, peer = pair
    return ask(reference, word), ask(peer, word)


def labelled_lines(text: str, separator: str) -> list[tuple[str, str]]:
    rows = []
    for line in text.rstrip("\n").split("\n"):
        assert separator in line, f"no {separator!r} in {line!r} of:\n{text}"
        key, value = line.split(separator, 1)
        rows.append((key, value.strip() if separator == ":" else value))
    return rows


def check_srvr(text: str, problems: list[str], who: str) -> dict[str, str]:
    rows = labelled_lines(text, ":")
    labels = [label for label, _ in rows]
    if labels != [label for label, _ in SRVR_LINES]:
        problems.append(f"{who} srvr labels {labels}")
        return dict(rows)
    for (label, value), (_, pattern) in zip(rows, SRVR_LINES):
        if not re.fullmatch(pattern, value):
            problems.append(f"{who} srvr {label}: {value!r} is not {pattern}")
    return dict(rows)


def parse_mntr(text: str) -> list[tuple[str, str]]:
    return labelled_lines(text, "\t")


def client_lines(text: str) -> list[dict]:
    """stat's Clients section or cons: one dict per connection."""
    clients = []
    for line in text.split("\n"):
        if not line.startswith(" /"):
            continue
        match = CLIENT_LINE.match(line)
        assert match, f"client line {line!r}"
        fields = dict(field.split("=", 1) for field in match["fields"].split(","))
        fields["interest"] = match["interest"]
        fields["_keys"] = list(fields)[:-1]
        clients.append(fields)
    return clients


class Sessions:
    """Maps each server's session ids to the names of the clients that own them."""

    def __init__(self, **clients) -> None:
        self.names = {f"0x{c.session_id & 0xFFFFFFFFFFFFFFFF:x}": name for name, c in clients.items()}
        self.names["0x0"] = "none"

    def __call__(self, sid: str) -> str:
        return self.names.get(sid, f"unknown {sid}")


def workload(server, raw_factory):
    """The same packets to each server: two sessions, ephemerals, every kind of watch."""
    a, b = raw_factory(server), raw_factory(server)
    a.create("/a", b"12345")
    a.create("/a/b", b"x")
    a.create("/e", flags=CreateMode.EPHEMERAL)
    b.create("/e2", flags=CreateMode.EPHEMERAL)
    b.create("/e3", flags=CreateMode.EPHEMERAL_SEQUENTIAL)
    a.exists("/a", watch=True)
    a.get_data("/a/b", watch=True)
    a.get_children("/a", watch=True)
    a.exists("/nothere", watch=True)
    b.get_data("/a", watch=True)
    b.get_children("/a/b", watch=True)
    b.add_watch("/p", AddWatchMode.PERSISTENT)
    b.add_watch("/r", AddWatchMode.PERSISTENT_RECURSIVE)
    return a, b


def data_watches() -> dict[str, set[str]]:
    """What wchc shows after ``workload``: the data-watch table only (exists/getData watches
    and persistent ones; the getChildren watches are not listed)."""
    return {"a": {"/a", "/a/b", "/nothere"}, "b": {"/a", "/p", "/r"}}


def parse_wchc(text: str, sessions: Sessions) -> dict[str, set[str]]:
    table: dict[str, set[str]] = {}
    current = None
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("\t"):
            table[current].add(line[1:])
        else:
            current = sessions(line)
            table[current] = set()
    return table


def parse_wchp(text: str, sessions: Sessions) -> dict[str, set[str]]:
    table: dict[str, set[str]] = {}
    current = None
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("\t"):
            table[current].add(sessions(line[1:]))
        else:
            current = line
            table[current] = set()
    return table


def parse_dump(text: str, sessions: Sessions, problems: list[str], who: str) -> dict:
    """SessionTracker sets, ephemerals and connection sets of a dump, normalised."""
    lines = text.rstrip("\n").split("\n")
    result = {"sessions": [], "ephemerals": {}, "connections": []}
    expected_heads = ["SessionTracker dump:", "ephemeral nodes dump:", "Connections dump:"]
    heads = [line for line in lines if line in expected_heads]
    if heads != expected_heads:
        problems.append(f"{who} dump sections {heads}")
        return result
    section = None
    owner = None
    for line in lines:
        if line in expected_heads:
            section = line
            continue
        if re.fullmatch(r"(Session|Connections) Sets \(\d+\)/\(\d+\):", line):
            continue
        if re.fullmatch(r"\d+ expire at .+:", line):
            stamp = line.split(" expire at ", 1)[1][:-1]
            try:
                expiry = time.mktime(time.strptime(stamp, JAVA_DATE))
            except ValueError:
                problems.append(f"{who} dump date {stamp!r} is not {JAVA_DATE}")
                continue
            if not time.time() - 5 < expiry < time.time() + 120:
                problems.append(f"{who} dump expiry {stamp!r} is not in the next two minutes")
            continue
        if section == "SessionTracker dump:":
            result["sessions"].append(sessions(line.strip()))
        elif section == "ephemeral nodes dump:":
            if line.startswith("Sessions with Ephemerals"):
                continue
            if line.startswith("\t"):
                result["ephemerals"][owner].add(line[1:])
            else:
                owner = sessions(line.rstrip(":"))
                result["ephemerals"][owner] = set()
        else:
            match = re.fullmatch(r"\tip: /127\.0\.0\.1:\d+ sessionId: (0x[0-9a-f]+)", line)
            if match is None:
                problems.append(f"{who} dump connection line {line!r}")
            else:
                result["connections"].append(sessions(match[1]))
    result["sessions"].sort()
    result["connections"].sort()
    return result


def report(problems: list[str], reference_text: dict, peer_text: dict) -> None:
    if problems:
        shown = "\n".join(f"--- {word}\nreference:\n{reference_text[word]}\nzkpy:\n{peer_text[word]}"
                          for word in sorted(reference_text))
        raise AssertionError("\n".join(problems) + "\n\n" + shown)


# --- tests --------------------------------------------------------------------------------------

def test_fresh_servers(server_pair):
    pair = server_pair()
    ref_text, peer_text, problems = {}, {}, []
    for word in ["ruok", "isro", "gtmk", "srvr", "mntr", "conf", "envi", "dirs", "wchs", "wchc",
                 "wchp"]:
        ref_text[word], peer_text[word] = ask_both(pair, word)
    for word in ["ruok", "isro", "gtmk", "wchs", "wchc", "wchp"]:
        if ref_text[word] != peer_text[word]:
            problems.append(f"{word}: {ref_text[word]!r} != {peer_text[word]!r}")
    ref_srvr = check_srvr(ref_text["srvr"], problems, "reference")
    peer_srvr = check_srvr(peer_text["srvr"], problems, "zkpy")
    # ZooKeeper counts the root twice (it is in its node map under "" and "/"): 5 nodes for
    # /, /zookeeper, /zookeeper/quota and /zookeeper/config.
    for who, values in (("reference", ref_srvr), ("zkpy", peer_srvr)):
        if values.get("Node count") != "5" or values.get("Zxid") != "0x0":
            problems.append(f"{who} fresh srvr: {values}")
    ref_mntr, peer_mntr = dict(parse_mntr(ref_text["mntr"])), dict(parse_mntr(peer_text["mntr"]))
    if ref_mntr.get("zk_znode_count") != "5" or peer_mntr.get("zk_znode_count") != "5":
        problems.append("a fresh server's zk_znode_count is 5")
    if [k for k, _ in labelled_lines(ref_text["conf"], "=")] != CONF_KEYS:
        problems.append("reference conf keys changed?")
    if [k for k, _ in labelled_lines(peer_text["conf"], "=")] != CONF_KEYS:
        problems.append(f"zkpy conf keys {labelled_lines(peer_text['conf'], '=')}")
    check_conf(pair, ref_text["conf"], peer_text["conf"], problems)
    check_envi(ref_text["envi"], peer_text["envi"], problems)
    for who, text in (("reference", ref_text["dirs"]), ("zkpy", peer_text["dirs"])):
        if not re.fullmatch(r"datadir_size: \d+\nlogdir_size: \d+\n", text):
            problems.append(f"{who} dirs {text!r}")
    report(problems, ref_text, peer_text)


def check_conf(pair, ref_conf: str, peer_conf: str, problems: list[str]) -> None:
    ref, peer = dict(labelled_lines(ref_conf, "=")), dict(labelled_lines(peer_conf, "="))
    for server, values in zip(pair, (ref, peer)):
        if values.get("clientPort") != str(server.port):
            problems.append(f"{server.kind} conf clientPort {values.get('clientPort')}")
        for key in ("dataDir", "dataLogDir"):
            if not values.get(key, "").startswith(str(server.data_dir)):
                problems.append(f"{server.kind} conf {key}={values.get(key)}")
        for key in ("dataDirSize", "dataLogSize"):
            if not re.fullmatch(r"\d+", values.get(key, "")):
                problems.append(f"{server.kind} conf {key}={values.get(key)}")
    for key in ("secureClientPort", "tickTime", "maxClientCnxns", "minSessionTimeout",
                "maxSessionTimeout", "clientPortListenBacklog", "serverId"):
        if ref.get(key) != peer.get(key):
            problems.append(f"conf {key}: {ref.get(key)} != {peer.get(key)}")


def check_envi(ref_envi: str, peer_envi: str, problems: list[str]) -> None:
    for who, text in (("reference", ref_envi), ("zkpy", peer_envi)):
        if not text.startswith("Environment:\n"):
            problems.append(f"{who} envi does not start with Environment:")
    ref = dict(labelled_lines(ref_envi.split("\n", 1)[1], "="))
    peer = dict(labelled_lines(peer_envi.split("\n", 1)[1], "="))
    ref_order = [k for k in ref if k in ENVI_COMMON]
    peer_order = [k for k in peer if k in ENVI_COMMON]
    if ref_order != ENVI_COMMON or peer_order != ENVI_COMMON:
        problems.append(f"envi common keys: reference {ref_order}, zkpy {peer_order}")
    for key in ("os.name", "os.arch", "os.version", "user.name", "user.home"):
        if ref.get(key) != peer.get(key):
            problems.append(f"envi {key}: {ref.get(key)!r} != {peer.get(key)!r}")
    for key in ("os.memory.free", "os.memory.max", "os.memory.total"):
        if not re.fullmatch(r"\d+MB", peer.get(key, "")):
            problems.append(f"zkpy envi {key}={peer.get(key)!r}")
    extra = [k for k in peer if k not in ENVI_COMMON and not k.startswith("python.")]
    if extra:
        problems.append(f"zkpy envi keys the reference lacks: {extra}")


def test_after_the_same_workload(server_pair, raw_factory):
    pair = server_pair()
    sessions = []
    for server in pair:
        a, b = workload(server, raw_factory)
        sessions.append(Sessions(a=a, b=b))
    ref_text, peer_text, problems = {}, {}, []
    for word in ["srvr", "stat", "mntr", "cons", "wchs", "wchc", "wchp", "dump"]:
        ref_text[word], peer_text[word] = ask_both(pair, word)

    # srvr: same format; equal counts and zxid (2 sessions + 5 creates).
    ref_srvr = check_srvr(ref_text["srvr"], problems, "reference")
    peer_srvr = check_srvr(peer_text["srvr"], problems, "zkpy")
    for label in ("Connections", "Outstanding", "Zxid", "Mode", "Node count"):
        if ref_srvr.get(label) != peer_srvr.get(label):
            problems.append(f"srvr {label}: {ref_srvr.get(label)} != {peer_srvr.get(label)}")
    if peer_srvr.get("Node count") != "10":
        problems.append(f"zkpy Node count {peer_srvr.get('Node count')}, expected 10")

    # stat: srvr's lines around a Clients section with the same per-connection counts.
    for who, text in (("reference", ref_text["stat"]), ("zkpy", peer_text["stat"])):
        head, _, rest = text.partition("\nClients:\n")
        clients_part, _, tail = rest.partition("\n\n")
        check_srvr(head + "\n" + tail, problems, f"{who} stat")
    counts = [sorted((c["interest"], c["queued"], c["recved"], c["sent"])
                     for c in client_lines(text)) for text in (ref_text["stat"], peer_text["stat"])]
    if counts[0] != counts[1]:
        problems.append(f"stat clients (interest, queued, recved, sent): {counts[0]} != {counts[1]}")

    check_mntr(ref_text["mntr"], peer_text["mntr"], problems)
    check_cons(ref_text["cons"], peer_text["cons"], sessions, problems)

    # Watches: wchs exactly; wchc/wchp as tables with sessions named after their clients.
    if ref_text["wchs"] != peer_text["wchs"]:
        problems.append(f"wchs: {ref_text['wchs']!r} != {peer_text['wchs']!r}")
    expected = data_watches()
    by_path: dict[str, set[str]] = {}
    for name, watched in expected.items():
        for path in watched:
            by_path.setdefault(path, set()).add(name)
    for who, text, names in (("reference", ref_text, sessions[0]), ("zkpy", peer_text, sessions[1])):
        if parse_wchc(text["wchc"], names) != expected:
            problems.append(f"{who} wchc {parse_wchc(text['wchc'], names)}")
        if parse_wchp(text["wchp"], names) != by_path:
            problems.append(f"{who} wchp {parse_wchp(text['wchp'], names)}")
        if not text["wchc"].endswith("\n\n") or not text["wchp"].endswith("\n\n"):
            problems.append(f"{who} wchc/wchp end with an empty line")

    dumps = [parse_dump(ref_text["dump"], sessions[0], problems, "reference"),
             parse_dump(peer_text["dump"], sessions[1], problems, "zkpy")]
    expected_dump = {"sessions": ["a", "b"],
                     "ephemerals": {"a": {"/e"}, "b": {"/e2", "/e30000000003"}},
                     "connections": ["a", "b", "none"]}
    for who, parsed in zip(("reference", "zkpy"), dumps):
        if parsed != expected_dump:
            problems.append(f"{who} dump {parsed}")

    # crst and srst: the same acknowledgement, and the counters are reset the same way.
    for word, answer in (("crst", "Connection stats reset.\n"), ("srst", "Server stats reset.\n")):
        ref_text[word], peer_text[word] = ask_both(pair, word)
        if ref_text[word] != answer or peer_text[word] != answer:
            problems.append(f"{word}: {ref_text[word]!r} / {peer_text[word]!r}")
    ref_text["cons after crst"], peer_text["cons after crst"] = ask_both(pair, "cons")
    after = [sorted((c["recved"], c["sent"], c.get("lop"), c.get("lcxid"), c.get("llat"))
                    for c in client_lines(text))
             for text in (ref_text["cons after crst"], peer_text["cons after crst"])]
    if after[0] != after[1]:
        problems.append(f"cons after crst: {after[0]} != {after[1]}")
    ref_text["srvr after srst"], peer_text["srvr after srst"] = ask_both(pair, "srvr")
    latencies = [check_srvr(text, problems, "after srst").get("Latency min/avg/max")
                 for text in (ref_text["srvr after srst"], peer_text["srvr after srst"])]
    if latencies != ["0/0.0/0", "0/0.0/0"]:
        problems.append(f"latency after srst: {latencies}")
    report(problems, ref_text, peer_text)


def check_mntr(ref_mntr: str, peer_mntr: str, problems: list[str]) -> None:
    ref_rows, peer_rows = parse_mntr(ref_mntr), parse_mntr(peer_mntr)
    ref, peer = dict(ref_rows), dict(peer_rows)
    unknown = [key for key in peer if key not in ref]
    if unknown:
        problems.append(f"mntr keys the reference does not print: {unknown}")
    ref_order = [key for key, _ in ref_rows if key in peer]
    if [key for key, _ in peer_rows if key in ref] != ref_order:
        problems.append("zkpy's mntr keys are not in the reference's order")
    for key, pattern in IMPORTANT_MNTR.items():
        for who, values in (("reference", ref), ("zkpy", peer)):
            if key not in values:
                problems.append(f"{who} mntr lacks {key}")
            elif not re.fullmatch(pattern, values[key]):
                problems.append(f"{who} mntr {key}={values[key]!r} is not {pattern}")
    for key in EQUAL_MNTR:
        if ref.get(key) != peer.get(key):
            problems.append(f"mntr {key}: {ref.get(key)} != {peer.get(key)}")
    expected = {"zk_znode_count": "10", "zk_watch_count": "10", "zk_ephemerals_count": "3",
                "zk_global_sessions": "2", "zk_num_alive_connections": "3"}
    for key, value in expected.items():
        if peer.get(key) != value:
            problems.append(f"zkpy mntr {key}={peer.get(key)}, expected {value}")
    for who, values in (("reference", ref), ("zkpy", peer)):
        numbers = {k: int(values.get(k, "0")) for k in (
            "zk_packets_received", "zk_packets_sent", "zk_open_file_descriptor_count",
            "zk_max_file_descriptor_count")}
        if min(numbers.values()) <= 0:
            problems.append(f"{who} mntr {numbers}")
        if not int(values.get("zk_min_latency", 0)) <= int(values.get("zk_max_latency", -1)):
            problems.append(f"{who} mntr latency min > max")


def check_cons(ref_cons: str, peer_cons: str, sessions: list[Sessions], problems: list[str]) -> None:
    summaries = []
    for who, text, names in (("reference", ref_cons, sessions[0]), ("zkpy", peer_cons, sessions[1])):
        if not text.endswith(")\n\n"):
            problems.append(f"{who} cons does not end with an empty line")
        summary = []
        for client in client_lines(text):
            if "sid" in client:
                if client["_keys"] != CONS_SESSION_KEYS:
                    problems.append(f"{who} cons keys {client['_keys']}")
                for key in ("est", "lresp", "llat", "minlat", "avglat", "maxlat", "to"):
                    if not re.fullmatch(INT, client.get(key, "")):
                        problems.append(f"{who} cons {key}={client.get(key)!r}")
                summary.append((names(client["sid"]), client["interest"], client["recved"],
                                client["sent"], client["lop"], client["to"], client["lcxid"],
                                client["lzxid"]))
            else:
                if client["_keys"] != ["queued", "recved", "sent"]:
                    problems.append(f"{who} cons keys {client['_keys']}")
                summary.append(("none", client["interest"], client["recved"], client["sent"]))
        summaries.append(sorted(summary))
    if summaries[0] != summaries[1]:
        problems.append(f"cons: {summaries[0]} != {summaries[1]}")


def test_words_outside_the_whitelist(server_pair):
    # ruok stays on the list: the launcher waits for it.
    pair = server_pair(settings={"4lw.commands.whitelist": "srvr, ruok"})
    for word in ALL_WORDS:
        reference, peer = ask_both(pair, word)
        if word in ("srvr", "ruok"):
            assert peer.startswith("Zookeeper version:") or peer == "imok", (word, peer)
            continue
        assert reference == f"{word} is not executed because it is not in the whitelist.\n"
        assert peer == reference, word
    # A word that is not a four-letter word at all is read as a frame length: closed silently.
    assert ask_both(pair, "xyzw") == ("", "")
