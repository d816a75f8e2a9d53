"""The Go build of the pinned programs: the wrapper module each is built from and the checksums
it trusts. The builds themselves run in `invoke setup` (and so in
every `.ci/run`); here, the decisions, on go.mod texts of the shapes the pinned modules have."""

import dataclasses

import pytest

from devstack.cluster import binaries as b
from devstack.core.catalogue import PROGRAMS, GoProgram
from devstack.core.errors import CommandError

pytestmark = pytest.mark.unit

KUBERNETES_GO_MOD = """\
module k8s.io/kubernetes

go 1.23.0

require (
\tgithub.com/spf13/cobra v1.8.1
\tk8s.io/api v0.0.0 // indirect
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/kubectl => ./staging/src/k8s.io/kubectl
)
"""
ETCD_GO_MOD = """\
module go.etcd.io/etcd/server/v3

go 1.22

require go.etcd.io/etcd/api/v3 v3.5.16
require (
\tgo.etcd.io/etcd/client/v2 v2.305.16
)

replace go.etcd.io/etcd/api/v3 => ../api
replace go.etcd.io/etcd/client/v2 => ../client/v2

replace (
\tgo.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
\tgithub.com/pkg/browser => github.com/tilt-dev/browser v0.0.1
)
"""


def program(name: str) -> GoProgram:
    return next(p for p in PROGRAMS if p.name == name)


def test_staging_modules_are_replaced_by_their_release() -> None:
    text = b.wrapper_go_mod(program("kubernetes"), b.parse_go_mod(KUBERNETES_GO_MOD))
    assert "require k8s.io/kubernetes v1.32.2\n" in text
    assert "\tk8s.io/api => k8s.io/api v0.32.2\n" in text
    assert "\tk8s.io/kubectl => k8s.io/kubectl v0.32.2\n" in text
    assert "go 1.23.0\n" in text and "./staging" not in text


def test_sibling_modules_take_the_version_the_module_requires_them_at() -> None:
    etcd = b.parse_go_mod(ETCD_GO_MOD)
    assert etcd.requires == {
        "go.etcd.io/etcd/api/v3": "v3.5.16",
        "go.etcd.io/etcd/client/v2": "v2.305.16",
    }
    text = b.wrapper_go_mod(program("etcd"), etcd)
    assert "\tgo.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.5.16\n" in text
    assert "\tgo.etcd.io/etcd/client/v2 => go.etcd.io/etcd/client/v2 v2.305.16\n" in text
    assert "FORBIDDEN_DEPENDENCY" not in text  # a guard path of etcd's, not a module
    assert "\tgithub.com/pkg/browser => github.com/tilt-dev/browser v0.0.1\n" in text


def test_a_local_replace_of_unknown_version_is_an_error_not_a_guess() -> None:
    unversioned = dataclasses.replace(program("etcd"), local_version=None)
    mod = b.parse_go_mod(KUBERNETES_GO_MOD)
    with pytest.raises(CommandError, match=r"k8s\.io/api locally and requires it at v0\.0\.0"):
        b.wrapper_go_mod(unversioned, mod)


def test_a_prepared_source_replaces_the_module_itself() -> None:
    text = b.wrapper_go_mod(program("tilt"), b.GoMod(), prepared="./source")
    assert "\tgithub.com/tilt-dev/tilt => ./source\n" in text


def test_only_the_modules_the_checksum_database_cannot_answer_take_the_projects_checksums(
    tmp_path,
) -> None:
    (tmp_path / "go.sum").write_text(
        "github.com/docker/buildx v0.32.1 h1:stale=\n"
        "github.com/tilt-dev/starlark-lsp v0.0.0-2023 h1:recorded=\n"
        "github.com/tilt-dev/starlark-lsp v0.0.0-2023/go.mod h1:recorded-mod=\n"
    )
    lines = b.project_checksums(program("tilt"), tmp_path).splitlines()
    assert lines == [
        "github.com/tilt-dev/starlark-lsp v0.0.0-2023 h1:recorded=",
        "github.com/tilt-dev/starlark-lsp v0.0.0-2023/go.mod h1:recorded-mod=",
    ]
    (tmp_path / "go.sum").write_text("github.com/docker/buildx v0.32.1 h1:stale=\n")
    with pytest.raises(CommandError, match=r"no checksum for github\.com/tilt-dev/starlark-lsp"):
        b.project_checksums(program("tilt"), tmp_path)


def test_a_substitute_is_a_replace_line_and_keys_its_program_alone() -> None:
    flannel = program("flannel")
    go_mod = b.wrapper_go_mod(flannel, b.GoMod(go="1.25.0"))
    module, version = flannel.substitutes[0]
    assert f"\t{module} => {module} v{version}" in go_mod
    bare = dataclasses.replace(flannel, substitutes=())
    assert bare.folder != flannel.folder
