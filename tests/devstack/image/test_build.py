import subprocess

import pytest

from devstack.image.build import GitState, cached_steps, git_state, image_tags, labels

pytestmark = pytest.mark.unit

SHA = "0123456789abcdef0123456789abcdef01234567"


def state(**overrides) -> GitState:
    values = {
        "sha": SHA,
        "dirty": False,
        "release": None,
        "committed_at": "2026-11-28T20:00:00+00:00",
    }
    values.update(overrides)
    return GitState(**values)


def test_clean_tree_gets_the_sha_tag_only() -> None:
    assert image_tags(state()) == ["vaia-agent:sha-0123456"]


def test_dirty_tree_is_marked() -> None:
    assert image_tags(state(dirty=True)) == ["vaia-agent:sha-0123456-dirty"]


def test_release_tag_adds_semver_but_never_latest() -> None:
    tags = image_tags(state(release="1.4.2"))
    assert tags == ["vaia-agent:sha-0123456", "vaia-agent:1.4.2"]
    assert not any(t.endswith(":latest") for t in tags)


def test_dirty_release_gets_no_semver_tag() -> None:
    assert image_tags(state(release="1.4.2", dirty=True)) == ["vaia-agent:sha-0123456-dirty"]


def test_labels_carry_revision_version_created_source() -> None:
    assert labels(state(release="2.0.0")) == {
        "VERSION": "2.0.0",
        "REVISION": SHA,
        "CREATED": "2026-11-28T20:00:00+00:00",
        "SOURCE": "https://github.com/vaia-devstack/vaia-devstack",
    }
    assert labels(state())["VERSION"] == "sha-0123456"


def git(repo, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_git_state_reads_a_real_repository(tmp_path) -> None:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "f.txt").write_text("one")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "one")
    git(tmp_path, "tag", "v1.2.3")
    git(tmp_path, "tag", "not-a-release")
    s = git_state(tmp_path)
    assert s.sha == git(tmp_path, "rev-parse", "HEAD") and not s.dirty and s.release == "1.2.3"
    (tmp_path / "f.txt").write_text("two")
    assert git_state(tmp_path).dirty
    (tmp_path / "untracked.txt").write_text("x")  # untracked files do not make it dirty
    git(tmp_path, "checkout", "-q", "f.txt")
    assert not git_state(tmp_path).dirty


def test_cached_steps_parses_buildkit_plain_output() -> None:
    log = """#5 [builder 2/6] RUN /usr/bin/python3.11 -m venv /opt/venv
#5 CACHED

#7 [builder 4/6] RUN --mount=type=secret,id=pip_ca,required=false     if [ -s ...
#7 CACHED

#9 [app 2/3] COPY agent /app/agent
#9 DONE 0.1s
"""
    assert cached_steps(log) == [
        "[builder 2/6] RUN /usr/bin/python3.11 -m venv /opt/venv",
        "[builder 4/6] RUN --mount=type=secret,id=pip_ca,required=false     if [ -s ...",
    ]
