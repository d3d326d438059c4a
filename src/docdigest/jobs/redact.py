"""Job arguments as logs and operators see them: values under secret-looking names hidden."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
_SECRET_NAME = re.compile(r"pass|secret|token|api_?key|auth|credential|cookie", re.I)


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: REDACTED if _SECRET_NAME.search(str(k)) and v is not None else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
