"""The surface machine's flag checks (in ``flags_from_the_command_line``): the admin reads work as the first call on
a fresh runtime, and a bad flag name or value is refused the same way by ``admin.set_flag``,
``db.commands.run("flags.set")`` and ``reliability flags set``, nothing written.

The rule is called directly with fixed arguments (no Hypothesis search), so adding rules to the machine does not
move these bites."""

from __future__ import annotations

import random

import pytest

from pytest_dbfault.machines import MACHINES, bind
from pytest_dbfault.machines.base import CONFIG_SPACE
from pytest_dbfault.machines.surface import BAD_FLAGS
from reliability import admin, cli

VALUES = {"beta": True, "größe": "on", "ops:maintenance": 2.5}


def run_rule(tmp_path, bad: tuple, pick: int = 0) -> str:
    """The rule once on a fresh example (the first value of every setting): its first violation, or ""."""
    machine = bind(MACHINES["surface"], None, base_dir=str(tmp_path), enforce={8, 14})()
    machine.start(random.Random(0), {k: v[0] for k, v in CONFIG_SPACE.items()}, frozenset())
    try:
        machine.flags_from_the_command_line(dict(VALUES), None, pick, bad)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    finally:
        machine.teardown()
    return ""


@pytest.mark.parametrize("bad", BAD_FLAGS, ids=range(len(BAD_FLAGS)))
def test_real_runtime_passes(tmp_path, bad):
    assert run_rule(tmp_path, bad, pick=1) == ""


class TrustingAdmin:
    """The command line's view of ``admin`` when it leaves checking the input to the command: it opens the database
    (a writable runtime, its journal) for input it could have refused at once."""

    def __getattr__(self, name):
        if name in ("validate_flag_name", "validate_flag_value"):
            return lambda value: None
        return getattr(admin, name)


@pytest.mark.parametrize("bad", [BAD_FLAGS[0], BAD_FLAGS[2], BAD_FLAGS[5], BAD_FLAGS[7]], ids=["empty", "long",
                                                                                                 "list", "nan"])
def test_it_bites_a_command_line_that_checks_nothing_itself(tmp_path, monkeypatch, bad):
    monkeypatch.setattr(cli, "admin", TrustingAdmin())
    message = run_rule(tmp_path, bad)
    assert "reliability flags set" in message and "changed the runtime's state" in message


def test_it_bites_a_command_that_checks_only_the_name(tmp_path, monkeypatch):
    # flags.set's own check forgets the value: admin.set_flag stores a list (or a 10,001-character text) as a flag.
    monkeypatch.setattr(admin, "_check_set", lambda name=None, value=None, actor=None, on_behalf_of=None:
                        admin.validate_flag_name(name))
    message = run_rule(tmp_path, BAD_FLAGS[5])
    assert "admin.set_flag" in message and "a bad flag value" in message


def test_it_bites_list_flags_that_needs_an_earlier_admin_call(tmp_path, monkeypatch):
    # list_flags runs the command without registering the admin commands first (set_flag and get_flag do).
    monkeypatch.setattr(admin, "list_flags", lambda db: db.commands.run("flags.list"))
    message = run_rule(tmp_path, BAD_FLAGS[0])
    assert "admin.list_flags as the first call on a fresh runtime" in message


def test_it_bites_get_flag_that_needs_an_earlier_admin_call(tmp_path, monkeypatch):
    real = admin.get_flag

    def get_flag(db, name):
        if "flags.get" not in db.commands:
            return db.commands.run("flags.get", name)  # (an unknown command on a runtime nobody registered)
        return real(db, name)

    monkeypatch.setattr(admin, "get_flag", get_flag)
    message = run_rule(tmp_path, BAD_FLAGS[0])
    assert "admin.get_flag('beta') as the first call on a fresh runtime" in message or \
        "admin.get_flag('größe') as the first call on a fresh runtime" in message
