#!/usr/bin/env python3
"""The zkpy image's entrypoint: the official ``zookeeper`` image's docker-entrypoint.sh, in Python.

Like the official script (3.8/3.9), in this order:

1. started as root with the server command (``zkServer.sh ...`` or ``zkpy ...``): give
   ZOO_DATA_DIR, ZOO_DATA_LOG_DIR and ZOO_LOG_DIR to the ``zookeeper`` user and carry on as that
   user (the official image does this with gosu; the image itself runs as ``zookeeper``);
2. if ``$ZOO_CONF_DIR/zoo.cfg`` does not exist, write it from the environment: dataDir,
   dataLogDir, tickTime, initLimit, syncLimit, autopurge.snapRetainCount,
   autopurge.purgeInterval, maxClientCnxns, standaloneEnabled, admin.enableServer, then each
   whitespace-separated entry of ZOO_SERVERS (default ``server.1=localhost:2888:3888;2181``),
   ``4lw.commands.whitelist`` if ZOO_4LW_COMMANDS_WHITELIST is set, and each
   whitespace-separated entry of ZOO_CFG_EXTRA; an existing zoo.cfg is left alone;
3. if ``$ZOO_DATA_DIR/myid`` does not exist, write ZOO_MY_ID (default 1) to it;
4. exec the command (default ``zkServer.sh start-foreground``), environment unchanged, so
   JVMFLAGS / SERVER_JVMFLAGS reach zkpy, which reads -D settings from them as zkServer.sh does.

The defaults are the image's ENV (tickTime 2000, initLimit 5, syncLimit 2, maxClientCnxns 60,
autopurge 0 / 3, standaloneEnabled and admin.enableServer true); a variable that is set but
empty is written empty, as the shell script does. Unlike the script, missing directories are
created. ``python entrypoint.py --generate-only`` writes the files and runs nothing.
"""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path

DEFAULTS = {
    "ZOO_CONF_DIR": "/conf",
    "ZOO_DATA_DIR": "/data",
    "ZOO_DATA_LOG_DIR": "/datalog",
    "ZOO_LOG_DIR": "/logs",
    "ZOO_TICK_TIME": "2000",
    "ZOO_INIT_LIMIT": "5",
    "ZOO_SYNC_LIMIT": "2",
    "ZOO_AUTOPURGE_PURGEINTERVAL": "0",
    "ZOO_AUTOPURGE_SNAPRETAINCOUNT": "3",
    "ZOO_MAX_CLIENT_CNXNS": "60",
    "ZOO_STANDALONE_ENABLED": "true",
    "ZOO_ADMINSERVER_ENABLED": "true",
}
DEFAULT_SERVERS = "server.1=localhost:2888:3888;2181"
DEFAULT_COMMAND = ["zkServer.sh", "start-foreground"]
SERVER_COMMANDS = ("zkServer.sh", "zkpy")
USER = "zookeeper"


def setting(env: dict, name: str) -> str:
    """The variable as the image has it: its ENV default when unset."""
    return env[name] if name in env else DEFAULTS.get(name, "")


def config_lines(env: dict) -> list[str]:
    lines = [
        f"dataDir={setting(env, 'ZOO_DATA_DIR')}",
        f"dataLogDir={setting(env, 'ZOO_DATA_LOG_DIR')}",
        f"tickTime={setting(env, 'ZOO_TICK_TIME')}",
        f"initLimit={setting(env, 'ZOO_INIT_LIMIT')}",
        f"syncLimit={setting(env, 'ZOO_SYNC_LIMIT')}",
        f"autopurge.snapRetainCount={setting(env, 'ZOO_AUTOPURGE_SNAPRETAINCOUNT')}",
        f"autopurge.purgeInterval={setting(env, 'ZOO_AUTOPURGE_PURGEINTERVAL')}",
        f"maxClientCnxns={setting(env, 'ZOO_MAX_CLIENT_CNXNS')}",
        f"standaloneEnabled={setting(env, 'ZOO_STANDALONE_ENABLED')}",
        f"admin.enableServer={setting(env, 'ZOO_ADMINSERVER_ENABLED')}",
    ]
    servers = env.get("ZOO_SERVERS", "")
    if not servers.strip():
        servers = DEFAULT_SERVERS
    lines.extend(servers.split())
    whitelist = env.get("ZOO_4LW_COMMANDS_WHITELIST", "")
    if whitelist:
        lines.append(f"4lw.commands.whitelist={whitelist}")
    lines.extend(env.get("ZOO_CFG_EXTRA", "").split())
    return lines


def generate(env: dict) -> dict:
    """Write zoo.cfg and myid unless they exist; returns what was written."""
    written = {}
    conf_dir = Path(setting(env, "ZOO_CONF_DIR"))
    config = conf_dir / "zoo.cfg"
    if not config.is_file():
        conf_dir.mkdir(parents=True, exist_ok=True)
        with open(config, "a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in config_lines(env)))
        written["zoo.cfg"] = config
    data_dir = Path(setting(env, "ZOO_DATA_DIR"))
    myid = data_dir / "myid"
    if not myid.is_file():
        data_dir.mkdir(parents=True, exist_ok=True)
        myid.write_text(f"{env.get('ZOO_MY_ID') or 1}\n", encoding="utf-8")
        written["myid"] = myid
    return written


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    if not path.exists():
        return
    os.chown(path, uid, gid, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def step_down(env: dict) -> None:
    """As root: hand the data directories to the zookeeper user and become that user."""
    user = pwd.getpwnam(USER)
    for name in ("ZOO_DATA_DIR", "ZOO_DATA_LOG_DIR", "ZOO_LOG_DIR"):
        _chown_tree(Path(setting(env, name)), user.pw_uid, user.pw_gid)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    os.environ["HOME"] = user.pw_dir
    os.environ["USER"] = os.environ["LOGNAME"] = USER


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    if argv[:1] == ["--generate-only"]:
        for name, path in generate(env).items():
            print(f"wrote {path}")
        return 0
    command = argv or DEFAULT_COMMAND
    if os.path.basename(command[0]) in SERVER_COMMANDS and os.getuid() == 0:
        step_down(env)
    generate(env)
    sys.stdout.flush()
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
