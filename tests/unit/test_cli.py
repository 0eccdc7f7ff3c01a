"""The zkpy command line: one argparse parser, ``run`` the default command, Java-style -D and
JVM flags split off before argparse sees them."""

from __future__ import annotations

import pytest

from zkpy import cli


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", [c for c in cli.COMMANDS])
def test_every_command_has_its_own_help(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"zkpy {command}" in capsys.readouterr().out


def test_a_config_path_alone_means_run():
    args = cli.build_parser().parse_args(["run", "zoo.cfg"])
    assert (args.command, args.config, args.log_json) == ("run", "zoo.cfg", False)


def test_java_arguments_are_split_off():
    properties, flags, rest = cli.split_java_arguments(
        ["-Dzookeeper.snapCount=5", "-Xmx1g", "-XX:+UseG1GC", "-server", "zoo.cfg"], [])
    assert properties == {"zookeeper.snapCount": "5"}
    assert flags == ["-Xmx1g", "-XX:+UseG1GC", "-server"]
    assert rest == ["zoo.cfg"]


def test_command_line_properties_win_over_jvmflags():
    properties, flags, rest = cli.split_java_arguments(
        ["-Da=command-line"], ["-Da=environment", "-Db=environment", "-Xms1g", "stray"])
    assert properties == {"a": "command-line", "b": "environment"}
    assert flags == ["-Xms1g"] and rest == []


def test_two_config_paths_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["one.cfg", "two.cfg"])
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_an_invalid_config_exits_2(tmp_path):
    path = tmp_path / "zoo.cfg"
    path.write_text("tickTime=soon\n")
    assert cli.main([str(path)]) == 2
