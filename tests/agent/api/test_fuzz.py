"""No client input may produce a 5xx: property-based bodies, headers and paths."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
infer_like = st.fixed_dictionaries(
    {},
    optional={
        "query": st.text(max_size=300) | json_values,
        "session_id": st.text(max_size=140) | json_values,
        "top_k": st.integers(-5, 30) | json_values,
    },
)
doc = st.fixed_dictionaries(
    {"title": st.text(max_size=40), "text": st.text(max_size=300)},
    optional={
        "id": st.text(max_size=30),
        "source": st.text(max_size=30) | st.none(),
        "metadata": st.dictionaries(st.text(max_size=10), json_values, max_size=3),
    },
)
ingest_like = st.fixed_dictionaries(
    {}, optional={"documents": st.lists(doc, max_size=3) | json_values}
)
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(body=infer_like | json_values)
def test_infer_never_5xx(client, body) -> None:
    response = client.post("/v1/agent/infer", json=body)
    assert response.status_code < 500, (body, response.text)
    if response.status_code == 200:
        assert response.json()["answer"]


@FUZZ
@given(body=ingest_like | json_values)
def test_ingest_never_5xx(client, body) -> None:
    response = client.post("/v1/knowledge/documents", json=body)
    assert response.status_code < 500, (body, response.text)


@FUZZ
@given(
    raw=st.binary(max_size=200),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "", "application/x-www-form-urlencoded"]
    ),
)
def test_raw_bytes_never_5xx(client, raw, content_type) -> None:
    for path in ("/v1/agent/infer", "/v1/knowledge/documents"):
        response = client.post(path, content=raw, headers={"content-type": content_type})
        assert response.status_code < 500, (raw, response.text)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="?#"),
        max_size=40,
    ),
    request_id=st.text(
        alphabet=st.characters(codec="latin-1", exclude_categories=("Cc",)), max_size=80
    ),
)
def test_paths_and_headers_never_5xx(client, path, request_id) -> None:
    response = client.get(
        "/" + path.lstrip("/"), headers={"X-Request-ID": request_id.encode("latin-1")}
    )
    assert response.status_code < 500


def test_unicode_edge_cases_answer(client) -> None:
    for query in [
        "\u202eroll back\u202c",
        "🚀 deploy 🚀",
        "ｒｏｌｌｂａｃｋ",
        "a\u0301" * 500,
        "\x00\x01 rollback",
        json.dumps({"query": "nested"}),
        "\ud7ff\ue000",
    ]:
        response = client.post("/v1/agent/infer", json={"query": query})
        assert response.status_code == 200, (query, response.text)
