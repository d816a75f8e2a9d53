import stat

import pytest

from devstack.secrets import render, write_secrets_env

pytestmark = pytest.mark.unit


def test_writes_the_key_mode_600_and_only_when_it_changes(tmp_path) -> None:
    path = tmp_path / "secrets.env"
    assert write_secrets_env(path, {"GEMINI_API_KEY": "k-123", "OTHER": "x"}) is True
    assert path.read_text() == "GEMINI_API_KEY=k-123\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert write_secrets_env(path, {"GEMINI_API_KEY": "k-123"}) is False
    assert write_secrets_env(path, {}) is True
    assert path.read_text() == ""


def test_existing_file_is_tightened_to_600(tmp_path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("")
    path.chmod(0o644)
    write_secrets_env(path, {"GEMINI_API_KEY": "k"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_multiline_values_are_refused() -> None:
    with pytest.raises(ValueError, match="single line"):
        render({"GEMINI_API_KEY": "a\nEVIL=1"})


def test_the_cli_never_prints_the_key(tmp_path, monkeypatch, capsys) -> None:
    from devstack.secrets import main

    monkeypatch.setenv("GEMINI_API_KEY", "super-secret-value")
    main(["secrets", str(tmp_path / "s.env")])
    out = capsys.readouterr().out
    assert "super-secret-value" not in out and "GEMINI_API_KEY" in out
