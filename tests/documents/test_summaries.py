"""The extractive summarizer and its sentence splitter."""

from __future__ import annotations

from threadpoolctl import threadpool_info

from docdigest.documents.summarize import split_sentences, summarize_extractive
from tests.documents import files


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    text = (
        "Dr. Smith moved to Washington, D.C. in 1990. He met e.g. the U.S. envoy, "
        "J. R. Jones, at 9 a.m. sharp. Was it useful? Yes! It was.\n\n# Next part\n"
        "- first item\n- second item"
    )
    assert split_sentences(text) == [
        "Dr. Smith moved to Washington, D.C. in 1990.",
        "He met e.g. the U.S. envoy, J. R. Jones, at 9 a.m. sharp.",
        "Was it useful?",
        "Yes!",
        "It was.",
        "# Next part",
        "- first item",
        "- second item",
    ]


def test_languages_without_spaces_split_on_their_full_stops() -> None:
    assert split_sentences("灯台は船を導いた。今は博物館です。") == [
        "灯台は船を導いた。",
        "今は博物館です。",
    ]


def test_summary_keeps_central_sentences_in_document_order() -> None:
    text = "\n\n".join(files.SENTENCES)
    summary = summarize_extractive(text, max_sentences=3)
    chosen = [s for s in files.SENTENCES if s in summary]
    assert len(chosen) == 3
    assert summary == " ".join(chosen)
    assert summarize_extractive(text, max_sentences=3) == summary  # deterministic


def test_long_documents_are_bounded_and_repeats_are_dropped() -> None:
    text = " ".join(files.SENTENCES * 800)  # ~100k words, every sentence repeated
    summary = summarize_extractive(text, max_sentences=5)
    sentences = split_sentences(summary)
    assert len(sentences) == 5
    assert len(set(sentences)) == 5


def test_short_texts_are_returned_whole() -> None:
    assert summarize_extractive("Only one sentence here, nothing else.") == (
        "Only one sentence here, nothing else."
    )
    assert summarize_extractive("") == ""


def test_summaries_leave_numpy_one_blas_thread() -> None:
    """OpenBLAS's extra threads spin after each product; in a worker that spin would
    take a core from extraction and from the other workers on the machine."""
    summarize_extractive(" ".join(files.SENTENCES * 40), max_sentences=5)
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas, "numpy loaded no BLAS library"
    assert [pool["num_threads"] for pool in blas] == [1] * len(blas)
