"""Logging for `obsrelay serve`: one handler for obsrelay and uvicorn, whose filter takes
secrets out of every line.

Tokens and keys reach log lines in URLs (the datastream's `?token=`, which uvicorn logs
for every websocket), in headers quoted by an error, or in a library's exception. The
HTTP client's own request lines, which would hold an alert webhook's secret URL, are
not logged at all.
`RedactSecrets` removes them from the message and any traceback before any handler
writes the record: bearer tokens, JWTs, `token=` parameters and site keys' secrets
(a key's id stays, so that an operator can tell which key it was).
"""

import logging
import re
import sys

_PATTERNS = [
    # A site key: its id may stay, its secret may not.
    (re.compile(r"\b(ork_[0-9A-Za-z]*_)[0-9A-Za-z_-]+"), r"\1[redacted]"),
    # A JWT anywhere: three base64url parts, the first one a JSON object ("eyJ").
    (re.compile(r"\beyJ[0-9A-Za-z_-]*\.[0-9A-Za-z_-]*\.?[0-9A-Za-z_-]*"), "[redacted-token]"),
    # Any query parameter or form field that carries a token or key.
    (
        re.compile(r"(?i)\b((?:access_|id_)?token|key|site_key|code)=[^&\s\"']+"),
        r"\1=[redacted]",
    ),
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',]+"), r"\1 [redacted]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites each record's message (and traceback) without secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: log what there is
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def configure_logging(level: str) -> None:
    """Every obsrelay and uvicorn line goes to stderr through RedactSecrets."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # httpx logs every request's URL at INFO: an alert webhook's URL is its secret
    # (Slack's, Mattermost's), which no pattern above can tell from any other URL.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
