"""docdigest: upload documents, get their text and a summary, by email and in a daily digest."""

__version__ = "0.1.0"
