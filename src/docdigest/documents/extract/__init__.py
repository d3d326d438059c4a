"""Text extraction: sandboxed child processes (sandbox.py) running the converters (formats.py)."""

from docdigest.documents.extract.result import Extracted, Unreadable
from docdigest.documents.extract.sandbox import ExtractionFailed, Limits, extract_file

__all__ = ["Extracted", "ExtractionFailed", "Limits", "Unreadable", "extract_file"]
