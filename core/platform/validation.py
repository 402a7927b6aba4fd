"""Whole-string validation for marshmallow fields: a value matches its pattern from its first to its last character.

`re.match` lets `$` match before a trailing newline ("acme\n" passes `^[a-z]+$`), and marshmallow's `Regexp`
uses `re.match`. `FullMatch` uses `re.fullmatch` instead, and keeps the pattern as written, so the pattern the
OpenAPI spec shows (an ECMA-262 regex, where `$` is the end of the input) means what the server enforces.
"""
from __future__ import annotations

import marshmallow as ma


class FullMatch(ma.validate.Regexp):
    def __call__(self, value: str) -> str:
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ma.ValidationError(self._format_error(value))
        return value
