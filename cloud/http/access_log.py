"""uvicorn's access log, made safe to keep: each line is the method, the path without its query
string (entry ids in it shortened), and the status; never a query (a key or a visitor token might
ride in one) nor a header; control characters escaped; at most MAX_LINE characters, so a
60,000-digit path costs the log what a short one does. `mcode cloud run` passes log_config() to uvicorn."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

MAX_LINE = 300
MAX_PATH = 200
# a path segment of 32+ hex digits is a bearer secret (an entry id is 128 random bits held by the
# shopper: whoever has it can share as them): the log keeps its first 4 digits only
_SECRET_SEGMENT = re.compile(r"/([0-9a-fA-F]{4})[0-9a-fA-F]{28,}(?=/|$)")


def _printable(s: str) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in s)


def access_line(client: object, method: object, path: object, version: object, status: object) -> str:
    p = _SECRET_SEGMENT.sub(r"/\1…", _printable(str(path).split("?", 1)[0]))
    if len(p) > MAX_PATH:
        p = p[:MAX_PATH] + "…"
    m, v = _printable(str(method))[:16], _printable(str(version))[:8]
    return f'{client} "{m} {p} HTTP/{v}" {status}'[:MAX_LINE]


class AccessLogFilter(logging.Filter):
    """Rewrites uvicorn.access records (args: client, method, path with query, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            line = access_line(*args)
        else:
            line = _printable(record.getMessage())[:MAX_LINE]
        record.msg, record.args = line, ()
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging config with the filter on the access logger and a plain formatter."""
    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg["filters"] = {"access_safe": {"()": AccessLogFilter}}
    cfg["formatters"]["access"] = {"format": "%(asctime)s %(name)s %(message)s"}
    cfg["loggers"]["uvicorn.access"]["filters"] = ["access_safe"]
    return cfg
