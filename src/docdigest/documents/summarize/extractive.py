"""The offline summarizer: TF-IDF sentence graph ranked with PageRank (TextRank/LexRank).

Deterministic and bounded: past MAX_GRAPH_SENTENCES sentences, a linear pass
keeps those closest to the document's centroid, so the quadratic graph never
grows with the document (100k words take well under a second).
"""

from __future__ import annotations

import functools
import re

import numpy as np
from threadpoolctl import threadpool_limits

from docdigest.documents.summarize.sentences import split_sentences

MAX_GRAPH_SENTENCES = 300
MAX_TERMS = 4000
MIN_TOKENS = 4
MAX_TOKENS = 120
DAMPING = 0.85

_WORD = re.compile(r"[^\W\d_]{2,}|\d{2,}")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def tokenize(sentence: str) -> list[str]:
    words: list[str] = _WORD.findall(sentence.lower())
    if sentence.isascii():
        return words
    tokens: list[str] = []
    for word in words:
        if len(word) > 3 and _CJK.match(word):
            # No spaces between CJK words: character bigrams stand in for terms.
            tokens.extend(word[i : i + 2] for i in range(len(word) - 1))
        else:
            tokens.append(word)
    return tokens


def summarize_extractive(text: str, max_sentences: int = 5) -> str:
    _one_blas_thread()
    sentences = split_sentences(text)
    tokens = [tokenize(sentence) for sentence in sentences]
    candidates = _distinct(
        [i for i, words in enumerate(tokens) if MIN_TOKENS <= len(words) <= MAX_TOKENS], sentences
    )
    if len(candidates) <= max_sentences:
        chosen = candidates or list(range(min(max_sentences, len(sentences))))
        return " ".join(sentences[i] for i in chosen)
    weights = _TfIdf([tokens[i] for i in candidates])
    rows = weights.closest_to_centroid(MAX_GRAPH_SENTENCES)
    scores = _pagerank(weights.similarity(rows))
    ranked = sorted(range(len(rows)), key=lambda k: (-scores[k], k))[:max_sentences]
    return " ".join(sentences[candidates[rows[k]]] for k in sorted(ranked))


@functools.cache
def _one_blas_thread() -> None:
    """Run numpy's BLAS on one thread in this process, from its first summary on.

    The graph's products are small (at most MAX_GRAPH_SENTENCES rows), and a second
    BLAS thread finishes them no sooner; OpenBLAS's threads then spin for a while
    after each one, waiting for more. In a worker that spin takes a core from the
    extraction children, the other jobs and the other workers on the machine: a
    summary of 200 sentences cost 40 ms of CPU instead of 10, in the same wall time.
    Workers run in parallel as processes, never through BLAS.
    """
    threadpool_limits(limits=1, user_api="blas")


def _distinct(indexes: list[int], sentences: list[str]) -> list[int]:
    """First occurrences only: repeated headers, footers and boilerplate rank high but say
    nothing twice."""
    seen: set[str] = set()
    kept = []
    for i in indexes:
        key = sentences[i].casefold()
        if key not in seen:
            seen.add(key)
            kept.append(i)
    return kept


class _TfIdf:
    """Sublinear TF-IDF weights of (sentence, term) pairs, kept as flat numpy arrays."""

    def __init__(self, documents: list[list[str]]) -> None:
        vocabulary: dict[str, int] = {}
        term_ids = [vocabulary.setdefault(t, len(vocabulary)) for words in documents for t in words]
        rows = np.repeat(np.arange(len(documents)), [len(words) for words in documents])
        pairs, tf = np.unique(
            rows * len(vocabulary) + np.array(term_ids, dtype=np.int64), return_counts=True
        )
        self.rows, self.terms = np.divmod(pairs, len(vocabulary))
        df = np.bincount(self.terms, minlength=len(vocabulary))
        idf = np.log((1 + len(documents)) / (1 + df)) + 1
        self.weights = (1 + np.log(tf)) * idf[self.terms]
        norms = np.sqrt(np.bincount(self.rows, self.weights**2, minlength=len(documents)))
        self.weights /= np.where(norms == 0, 1, norms)[self.rows]
        self.size = len(documents)
        self.df = df

    def closest_to_centroid(self, limit: int) -> list[int]:
        """The `limit` rows most similar to the centroid, in document order."""
        if self.size <= limit:
            return list(range(self.size))
        centroid = np.bincount(self.terms, self.weights, minlength=len(self.df))
        scores = np.bincount(self.rows, self.weights * centroid[self.terms], minlength=self.size)
        best = np.lexsort((np.arange(self.size), -scores))[:limit]
        return sorted(int(row) for row in best)

    def similarity(self, rows: list[int]) -> np.ndarray:
        """Cosine similarity of the chosen rows, on the terms two or more of them share."""
        position = np.full(self.size, -1)
        position[rows] = np.arange(len(rows))
        keep = position[self.rows] >= 0
        terms, weights = self.terms[keep], self.weights[keep]
        shared_df = np.bincount(terms, minlength=len(self.df))
        shared = np.flatnonzero(shared_df > 1)
        if len(shared) > MAX_TERMS:
            shared = shared[np.argsort(-shared_df[shared], kind="stable")[:MAX_TERMS]]
        column = np.full(len(self.df), -1)
        column[shared] = np.arange(len(shared))
        use = column[terms] >= 0
        matrix = np.zeros((len(rows), max(1, len(shared))), dtype=np.float32)
        matrix[position[self.rows[keep][use]], column[terms[use]]] = weights[use]
        similarity = matrix @ matrix.T
        np.fill_diagonal(similarity, 0)
        return similarity


def _pagerank(similarity: np.ndarray, iterations: int = 100, tol: float = 1e-6) -> list[float]:
    size = similarity.shape[0]
    out_weight = similarity.sum(axis=1, keepdims=True)
    # Sentences sharing no term with any other jump anywhere (the usual dangling-node fix).
    transition = np.where(
        out_weight > 0, similarity / np.where(out_weight == 0, 1, out_weight), 1 / size
    )
    rank = np.full(size, 1 / size)
    for _ in range(iterations):
        updated = (1 - DAMPING) / size + DAMPING * (transition.T @ rank)
        if np.abs(updated - rank).sum() < tol:
            rank = updated
            break
        rank = updated
    return [float(x) for x in rank]
