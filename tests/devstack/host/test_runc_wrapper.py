"""The runtime wrapper, run as dockerd runs it, in front of a stand-in runc that records what it
was given (the wrapper itself is the real program, installed as `invoke setup` installs it)."""

import json
import subprocess
import sys

import pytest

from devstack.host import runc_wrapper
from devstack.host.privileged import wrapper_source

pytestmark = pytest.mark.unit

EVERY = [f"CAP_{name}" for name in runc_wrapper.CAPABILITIES]
# This sandbox's bounding set: every capability of its kernel but CAP_SYS_RESOURCE (bit 24).
STATUS = "Name:\twrapper\nCapInh:\t0000000000000000\nCapBnd:\t000001fffeffffff\n"


def spec(caps):
    sets = ("bounding", "effective", "inheritable", "permitted", "ambient")
    return {
        "ociVersion": "1.0.2",
        "process": {"args": ["/sbin/init"], "capabilities": {k: list(caps) for k in sets}},
    }


@pytest.fixture
def installed(tmp_path):
    """The wrapper as installed, its runc a script that saves its arguments and the files they
    name; /proc/self/status read from a sample of this sandbox's."""
    runc = tmp_path / "runc"
    runc.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "json.dump({'argv': sys.argv[1:], 'cwd': os.getcwd()}, open(os.environ['RECORD'], 'w'))\n"
    )
    runc.chmod(0o755)
    wrapper = tmp_path / "runc-wrapper"
    source = wrapper_source(str(runc), sys.executable)
    status = tmp_path / "status"
    status.write_text(STATUS)
    wrapper.write_text(source.replace('open("/proc/self/status")', f"open({str(status)!r})"))
    wrapper.chmod(0o755)
    return wrapper


def call(wrapper, args, tmp_path, cwd=None):
    record = tmp_path / "record.json"
    done = subprocess.run(
        [str(wrapper), *args],
        cwd=cwd or tmp_path,
        env={"RECORD": str(record), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(record.read_text())


def test_create_leaves_out_only_what_the_host_cannot_grant(installed, tmp_path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(spec([*EVERY, "CAP_FUTURE_ONE"])))
    args = ["--root", "/run/docker/runtime-runc/moby", "--log", "x.log", "--log-format", "json",
            "create", "--bundle", str(bundle), "--pid-file", "p", "abc"]  # fmt: skip
    seen = call(installed, args, tmp_path)
    assert seen["argv"] == args  # runc gets exactly what the wrapper got
    caps = json.loads((bundle / "config.json").read_text())["process"]["capabilities"]
    for kind, names in caps.items():
        assert "CAP_SYS_RESOURCE" not in names, kind
        assert set(names) == (set(EVERY) - {"CAP_SYS_RESOURCE"}) | {"CAP_FUTURE_ONE"}, kind


@pytest.mark.parametrize("form", ["--bundle=B", "-b B", "cwd"])
def test_the_bundle_is_found_however_it_is_given(installed, tmp_path, form) -> None:
    bundle = tmp_path / "B"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(spec(EVERY)))
    given = [] if form == "cwd" else form.replace("B", str(bundle)).split()
    call(installed, ["run", *given, "abc"], tmp_path, cwd=bundle)
    caps = json.loads((bundle / "config.json").read_text())["process"]["capabilities"]
    assert "CAP_SYS_RESOURCE" not in caps["bounding"]


def test_exec_fixes_the_process_file(installed, tmp_path) -> None:
    process = tmp_path / "runc-process123"
    process.write_text(json.dumps(spec(EVERY)["process"]))
    call(installed, ["exec", "--process", str(process), "--detach", "abc"], tmp_path)
    caps = json.loads(process.read_text())["capabilities"]
    assert "CAP_SYS_RESOURCE" not in caps["effective"] and "CAP_SYS_ADMIN" in caps["effective"]


def test_a_spec_it_need_not_change_is_left_byte_for_byte(installed, tmp_path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    text = json.dumps(spec(["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]), indent=3)
    (bundle / "config.json").write_text(text)
    call(installed, ["create", "-b", str(bundle), "abc"], tmp_path)
    assert (bundle / "config.json").read_text() == text


@pytest.mark.parametrize("args", [["state", "abc"], ["delete", "--force", "abc"], ["--version"]])
def test_other_commands_pass_straight_through(installed, tmp_path, args) -> None:
    assert call(installed, args, tmp_path)["argv"] == args


def test_the_bounding_set_is_read_from_proc_status() -> None:
    held = runc_wrapper.bounding_set(STATUS)
    assert "CAP_SYS_RESOURCE" not in held and {"CAP_SYS_ADMIN", "CAP_BPF"} <= held
    assert len(held) == len(runc_wrapper.CAPABILITIES) - 1
