"""Summaries: the offline extractive summarizer and the LLM one."""

from docdigest.documents.summarize.extractive import summarize_extractive
from docdigest.documents.summarize.sentences import split_sentences

__all__ = ["split_sentences", "summarize_extractive"]
