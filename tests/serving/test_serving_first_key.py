"""The first API key of ``python -m nbrisk.start`` is printed exactly once, alone on its line, and never inside an
example command (an example line is what gets copied into tickets, shell histories and captured logs)."""

from __future__ import annotations

import nbrisk.start as start
from nbrisk.serving.auth import KeyStore


def test_first_key_printed_once_never_in_a_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NBRISK_KEYS_DB", str(tmp_path / "keys.db"))
    monkeypatch.setattr(start, "ensure_champion", lambda config: "1")
    launched: list[list[str]] = []
    monkeypatch.setattr(start.os, "execve", lambda path, cmd, env: launched.append(cmd))
    assert start.main(["--port", "3999"]) == 0
    out = capsys.readouterr().out
    assert launched and "--port" in launched[0]  # it went on to serve
    assert [k.name for k in KeyStore(tmp_path / "keys.db").list()] == ["first-key"]
    lines = [ln for ln in out.splitlines() if "nbk_" in ln]
    assert len(lines) == 1 and lines[0].strip().startswith("nbk_") and len(lines[0].split()) == 1
    assert out.count(lines[0].strip()) == 1
    assert "curl" in out and "$KEY" in out  # the example names a variable, not the key
    # a second start with the key in place: no key at all in the output
    assert start.main(["--port", "3999"]) == 0
    assert "nbk_" not in capsys.readouterr().out
