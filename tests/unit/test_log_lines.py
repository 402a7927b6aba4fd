"""A log line of an error carries where it happened (the stack), redacted like the message; lesser levels do not."""
import json
import logging
import sys

from core.platform.logs import JsonFormatter


def _line(level: int) -> dict:
    try:
        raise RuntimeError("lost zx_live_abcdefghijklmnop")
    except RuntimeError:
        record = logging.LogRecord("zixly.test", level, __file__, 1, "failed", (), exc_info=sys.exc_info())
    return json.loads(JsonFormatter().format(record))


def test_an_error_line_has_its_stack_with_secrets_masked():
    line = _line(logging.CRITICAL)
    assert line["error"].startswith("RuntimeError: lost zx_live_")
    assert "in _line" in line["stack"] and "Traceback" in line["stack"]
    assert "abcdefghijklmnop" not in line["stack"] and "[redacted]" in line["stack"]


def test_a_warning_line_names_the_error_without_the_stack():
    line = _line(logging.WARNING)
    assert line["error"].startswith("RuntimeError") and "stack" not in line
