"""The API server model's rules, each shown to bite (devstack/verify/apiserver.py)."""

import copy

import pytest

from devstack.verify.apiserver import ApiServer, key_of
from devstack.verify.kind import kubectl_world
from devstack.verify.tiltfile import LocalCommandFailed

pytestmark = pytest.mark.unit


def deployment(**pod_spec) -> dict:
    spec = {"containers": [{"name": "c", "image": "x:1"}], **pod_spec}
    return {
        "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "team"},
        "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": spec}},
    }


def server_with(*objs) -> ApiServer:
    server = ApiServer.cluster(["default", "team"])
    for obj in objs:
        server.commit(obj)
    return server


def test_a_namespaced_object_needs_its_namespace_and_a_cluster_scoped_one_does_not() -> None:
    server = ApiServer.cluster()
    obj = {"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "vaia"}}
    assert server.refusal(obj, server.keys()) == 'namespaces "vaia" not found'
    namespace = {"kind": "Namespace", "metadata": {"name": "vaia"}}
    assert server.refusal(namespace, server.keys()) is None
    assert server.refusal(obj, server.keys() | {key_of(namespace)}) is None
    assert key_of({"kind": "Secret", "metadata": {"name": "s"}}) == ("Secret", "default", "s")


def test_env_references_need_the_object_and_the_key_unless_optional() -> None:
    env = [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "K"}}}]
    workload = deployment(containers=[{"name": "c", "image": "x:1", "env": env}])
    assert server_with().pod_blockers(workload) == ["Secret s does not exist"]
    secret = {"kind": "Secret", "metadata": {"name": "s", "namespace": "team"}, "data": {}}
    assert server_with(secret).pod_blockers(workload) == ["Secret s has no key K"]
    secret["stringData"] = {"K": ""}
    assert server_with(secret).pod_blockers(workload) == []
    optional = copy.deepcopy(workload)
    optional["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"][
        "optional"
    ] = True
    assert server_with().pod_blockers(optional) == []


def test_env_from_volumes_service_accounts_and_claims_are_checked() -> None:
    workload = deployment(
        initContainers=[
            {"name": "i", "image": "x:1", "envFrom": [{"configMapRef": {"name": "cm"}}]}
        ],
        serviceAccountName="robot",
        volumes=[
            {"name": "v", "secret": {"secretName": "tls", "items": [{"key": "crt", "path": "c"}]}},
            {"name": "p", "projected": {"sources": [{"configMap": {"name": "extra"}}]}},
            {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
        ],
    )
    assert server_with().pod_blockers(workload) == [
        "ConfigMap cm does not exist",
        "Secret tls does not exist",
        "ConfigMap extra does not exist",
        "PersistentVolumeClaim data does not exist",
        "ServiceAccount robot does not exist",
    ]
    assert server_with().pod_blockers(deployment()) == []  # `default` comes with the namespace


def test_claims_need_a_storage_class_and_restricted_namespaces_refuse_privileged_pods() -> None:
    stateful = deployment()
    stateful["kind"] = "StatefulSet"
    stateful["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {}}]
    server = server_with()
    assert server.pod_blockers(stateful) == []
    server.default_storage_class = False
    assert server.pod_blockers(stateful) == ["volume claim data has no StorageClass to bind it"]
    server = server_with()
    server.objects[("Namespace", "", "team")]["metadata"]["labels"] = {
        "pod-security.kubernetes.io/enforce": "restricted"
    }
    [*blockers] = server.pod_blockers(deployment())
    assert blockers and all(b.startswith("refused by Pod Security admission") for b in blockers)


def test_the_kubectl_model_answers_get_as_kubectl_does() -> None:
    server = ApiServer.kind()
    world = kubectl_world(server)
    query = "kubectl --context kind-vaia -n kube-public get configmap {} -o name --ignore-not-found"
    assert world(query.format("missing")) == ""
    server.commit({"kind": "ConfigMap", "metadata": {"name": "here", "namespace": "kube-public"}})
    assert world(query.format("here")) == "configmap/here\n"
    other = "kubectl --context kind-other get namespace x -o name --ignore-not-found"
    with pytest.raises(LocalCommandFailed):
        world(other)
    assert world(other + " 2>/dev/null || echo unreachable") == "unreachable\n"
    with pytest.raises(LocalCommandFailed, match="not modelled"):
        world("kubectl --context kind-vaia delete namespace vaia")
