#!/bin/sh
# zkServer.sh for the zkpy image: the official zookeeper image's CMD is
# `zkServer.sh start-foreground`, so compose files and scripts written for it work unchanged.
# JVMFLAGS and SERVER_JVMFLAGS pass through the environment; zkpy reads their -D settings.
set -e
ZOOCFGDIR="${ZOOCFGDIR:-${ZOO_CONF_DIR:-/conf}}"
ZOOCFG="$ZOOCFGDIR/zoo.cfg"
if [ -n "$2" ]; then
    case "$2" in
        */*) ZOOCFG="$2" ;;
        *) ZOOCFG="$ZOOCFGDIR/$2" ;;
    esac
fi
case "$1" in
    start-foreground)
        exec zkpy "$ZOOCFG"
        ;;
    print-cmd)
        echo "zkpy \"$ZOOCFG\""
        ;;
    version)
        exec python -c 'import importlib.metadata as m; print("zkpy " + m.version("zkpy"))'
        ;;
    *)
        echo "Usage: $0 {start-foreground|print-cmd|version} [zoo.cfg]" >&2
        echo "(zkpy runs in the foreground only; start/stop/restart are the container's)" >&2
        exit 1
        ;;
esac
