"""Static checks of terraform/ with python-hcl2 (Terraform itself cannot be installed here): module calls pass
every required variable and nothing unknown, and use only outputs the module declares; `var.x` names a
declared variable. Each check takes parsed configurations, so a test can feed it a broken one."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import hcl2

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"
META_ARGUMENTS = {"source", "version", "providers", "count", "for_each", "depends_on"}
MODULE_REF = re.compile(r"\bmodule\.([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)")
VAR_REF = re.compile(r"(?<![\w.])var\.([A-Za-z_][\w-]*)")


@dataclass
class Config:
    """One Terraform directory (a module or an environment), with the parser's quoting removed."""

    path: Path
    variables: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    modules: dict[str, dict] = field(default_factory=dict)
    locals: dict[str, object] = field(default_factory=dict)
    blocks: list = field(default_factory=list)  # everything, for scanning expressions


def unquote(value):
    """python-hcl2 keeps string quotes and block markers; return plain Python values."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k != "__is_block__"}
    return value


def load_config(path: Path) -> Config:
    config = Config(path)
    for tf in sorted(path.glob("*.tf")):
        with tf.open() as handle:
            parsed = unquote(hcl2.load(handle))
        config.blocks.append(parsed)
        for block in parsed.get("variable", []):
            config.variables.update(block)
        for block in parsed.get("output", []):
            config.outputs.update(block)
        for block in parsed.get("module", []):
            config.modules.update(block)
        for block in parsed.get("locals", []):
            config.locals.update(block)
    return config


def load_all(root: Path = TERRAFORM) -> dict[Path, Config]:
    dirs = sorted({tf.parent for tf in root.rglob("*.tf")})
    return {d.resolve(): load_config(d) for d in dirs}


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def expressions(config: Config, *, skip: tuple[str, ...] = ()):
    """Every string that holds an expression (`${…}`), in every block but those of the kinds in `skip`."""
    blocks = [{kind: body for kind, body in parsed.items() if kind not in skip} for parsed in config.blocks]
    return (s for s in _strings(blocks) if "${" in s)


def module_call_problems(configs: dict[Path, Config]) -> list[str]:
    problems = []
    for config in configs.values():
        for name, call in config.modules.items():
            where = f"{_rel(config.path)}: module {name}"
            target = (config.path / call.get("source", "")).resolve()
            module = configs.get(target)
            if module is None:
                problems.append(f"{where}: source {call.get('source')!r} is not a module here")
                continue
            required = {v for v, body in module.variables.items() if "default" not in body}
            passed = set(call) - META_ARGUMENTS
            problems += [f"{where}: required variable {v} is not passed" for v in sorted(required - passed)]
            problems += [f"{where}: passes {v}, which the module does not declare"
                         for v in sorted(passed - set(module.variables))]
        for text in expressions(config):
            for module_name, output in MODULE_REF.findall(text):
                call = config.modules.get(module_name)
                if call is None:
                    problems.append(f"{_rel(config.path)}: uses module.{module_name}, which is not called here")
                    continue
                module = configs.get((config.path / call.get("source", "")).resolve())
                if module is not None and output not in module.outputs:
                    problems.append(f"{_rel(config.path)}: uses module.{module_name}.{output}, "
                                    f"but {call['source']} has no output {output}")
    return sorted(set(problems))


def variable_problems(configs: dict[Path, Config]) -> list[str]:
    """Every `var.x` is declared in its own directory; every declared variable is used."""
    problems = []
    for config in configs.values():
        referenced = {name for text in expressions(config) for name in VAR_REF.findall(text)}
        used = {name for text in expressions(config, skip=("variable",)) for name in VAR_REF.findall(text)}
        problems += [f"{_rel(config.path)}: var.{v} is not declared"
                     for v in sorted(referenced - set(config.variables))]
        problems += [f"{_rel(config.path)}: variable {v} is declared but never used"
                     for v in sorted(set(config.variables) - used)]
    return problems


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(TERRAFORM.parent))
    except ValueError:
        return str(path)
