"""Code-defined workflows, one module each, registered here by name."""
from __future__ import annotations

from core.workflows import echo

WORKFLOWS = {
    echo.NAME: echo,
}
