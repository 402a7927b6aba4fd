"""Forms generated from the marshmallow schemas the API validates: one source of truth for a field's rules.

`fields_of(schema)` describes each field for the template (input type, required, choices, bounds, length);
`parse(schema, form)` turns the posted strings into the values the schema expects and validates them with
the schema itself, returning the data or the field errors (then nothing may be changed).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import marshmallow as ma


@dataclass
class FormField:
    name: str
    label: str
    kind: str  # text | number | checkbox | select | email
    required: bool = False
    choices: list[str] = field(default_factory=list)
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    description: str | None = None
    default: object = None


def _validators(f: ma.fields.Field) -> list:
    return list(f.validators or [])


def describe(name: str, f: ma.fields.Field, label: str | None = None) -> FormField:
    spec = FormField(name=name, label=label or name.replace("_", " ").capitalize(), kind="text",
                     required=f.required, description=(f.metadata or {}).get("description"))
    if isinstance(f, ma.fields.Boolean):
        spec.kind = "checkbox"
    elif isinstance(f, ma.fields.Integer):
        spec.kind = "number"
    elif isinstance(f, ma.fields.Email):
        spec.kind = "email"
    for v in _validators(f):
        if isinstance(v, ma.validate.OneOf):
            spec.kind, spec.choices = "select", [str(c) for c in v.choices]
        elif isinstance(v, ma.validate.Range):
            spec.minimum, spec.maximum = v.min, v.max
        elif isinstance(v, ma.validate.Length):
            spec.max_length = v.max
    default = f.load_default
    spec.default = None if default is ma.missing or callable(default) else default
    return spec


def fields_of(schema: ma.Schema, names: list[str] | None = None) -> list[FormField]:
    names = names or [n for n, f in schema.fields.items() if not f.dump_only]
    return [describe(n, schema.fields[n]) for n in names]


def _value(f: ma.fields.Field, raw: str | None, present: bool):
    """The posted string as the JSON value the API's schema expects (None: leave the field out)."""
    if isinstance(f, ma.fields.Boolean):
        return present
    if raw is None:
        return None
    raw = raw.strip()
    if isinstance(f, ma.fields.Integer):
        if raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            return raw  # the schema says what is wrong with it
    if raw == "" and not f.required:
        return None
    return raw


def parse(schema: ma.Schema, form, names: list[str] | None = None, prefix: str = "") -> tuple[dict, dict]:
    """(data, {}) when valid; ({}, {field: message}) otherwise."""
    names = names or [n for n, f in schema.fields.items() if not f.dump_only]
    data = {}
    for name in names:
        f = schema.fields[name]
        value = _value(f, form.get(prefix + name), (prefix + name) in form)
        if value is not None:
            data[name] = value
    try:
        return schema.load(data), {}
    except ma.ValidationError as exc:
        return {}, {k: " ".join(map(str, v)) if isinstance(v, list) else str(v)
                    for k, v in exc.normalized_messages().items()}
