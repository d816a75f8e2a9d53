import itertools

import pytest

from agent.knowledge.chunking import chunk_document, slugify

pytestmark = pytest.mark.unit

DOC = """# Rollbacks

Intro paragraph about rollbacks.

## Undo

To roll back, run `kubectl rollout undo deployment/app`. Then watch the rollout.

```bash
kubectl rollout undo deployment/app

kubectl rollout status deployment/app
```

## History
### Listing

Run `kubectl rollout history` to list revisions.
"""


def test_ids_are_stable_and_indexed() -> None:
    chunks = chunk_document("runbook/rollbacks", "Rollbacks", DOC)
    assert [c.id for c in chunks] == [f"runbook/rollbacks::{i:04d}" for i in range(len(chunks))]
    assert chunks == chunk_document("runbook/rollbacks", "Rollbacks", DOC)


def test_sections_follow_headings_and_never_mix() -> None:
    chunks = chunk_document("d", "Rollbacks", DOC)
    assert [c.section for c in chunks] == ["", "Undo", "History > Listing"]
    assert "rollout history" in chunks[2].text and "rollout history" not in chunks[1].text


def test_code_fences_stay_whole() -> None:
    undo = chunk_document("d", "Rollbacks", DOC)[1]
    assert "```bash\nkubectl rollout undo deployment/app\n\nkubectl rollout status" in undo.text


def test_embedding_text_carries_the_heading_path() -> None:
    chunk = chunk_document("d", "Rollbacks", DOC)[2]
    assert chunk.embedding_text().startswith("Rollbacks — History > Listing\n")


def test_long_sections_split_within_size_with_sentence_overlap() -> None:
    sentences = [f"Step {i} restarts the pod number {i} and waits for it." for i in range(60)]
    chunks = chunk_document("d", "T", "## S\n\n" + " ".join(sentences), size=300, overlap=80)
    assert len(chunks) > 5
    assert all(len(c.text) <= 300 for c in chunks)
    for previous, current in itertools.pairwise(chunks):
        first_line = current.text.split("\n")[0]
        assert first_line in previous.text  # the overlap repeats whole sentences
        assert first_line.startswith("Step ")  # never a fragment


def test_a_single_huge_word_is_hard_cut() -> None:
    chunks = chunk_document("d", "T", "x" * 2500, size=1000, overlap=0)
    assert [len(c.text) for c in chunks] == [1000, 1000, 500]


def test_headings_only_document_is_still_stored() -> None:
    chunks = chunk_document("d", "T", "# Only a title\n## And a heading")
    assert len(chunks) == 1 and "Only a title" in chunks[0].text


@pytest.mark.parametrize("bad", ["", "-leading", "has space", "x" * 201, "semi;colon"])
def test_invalid_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid document id"):
        chunk_document(bad, "T", "text")


def test_slugify() -> None:
    assert slugify("Deploy Guide: v2!") == "deploy-guide-v2"
    assert slugify("???") == "document"
