"""Static checks of docker-compose.yml (Docker does not run here). Each returns a list of problems, so a test
can feed it a deliberately broken compose dict and see the problem reported."""
from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path

import click

ONE_SHOT_CONDITION = "service_completed_successfully"
CONDITIONS = {"service_started", "service_healthy", ONE_SHOT_CONDITION}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|(^|_)KEY$")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
GUNICORN_APP = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def spec_problems(compose: dict) -> list[str]:
    """The file against the Compose Specification (the compose_spec Rust crate, through its Python binding):
    a misspelt key, an unknown condition or a malformed port is refused there as Docker would refuse it.
    It is given the dict PyYAML made, so anchors and `<<` merges are already resolved."""
    from compose_spec import PyCompose

    try:
        PyCompose.from_json(json.dumps(compose))
    except ValueError as exc:
        return [str(exc)]
    return []


def zixly_services(compose: dict) -> dict[str, dict]:
    """The services built from this repository's Dockerfile (the ones that run Zixly code)."""
    return {name: svc for name, svc in compose.get("services", {}).items() if "build" in svc}


def command_argvs(command) -> list[list[str]]:
    """A service `command` as the argv lists it runs: `sh -c "a && b"` is two commands."""
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    if len(argv) >= 3 and argv[0] in {"sh", "/bin/sh", "bash", "/bin/bash"} and argv[1] == "-c":
        out, current = [], []
        for token in shlex.split(argv[2]):
            if token in {"&&", "||", ";"}:
                out.append(current)
                current = []
            else:
                current.append(token)
        return [c for c in out + [current] if c]
    return [argv]


def command_problems(argv: list[str], cli: click.Group, root: Path) -> list[str]:
    """A `zixly …` argv must resolve to a real command whose options parse; `gunicorn` must name a real app."""
    if not argv:
        return ["empty command"]
    if argv[0] == "zixly":
        return _zixly_problems(argv, cli)
    if argv[0] == "gunicorn":
        return _gunicorn_problems(argv, root)
    return [f"`{' '.join(argv)}` is neither a `zixly` command nor the gunicorn API server"]


def _zixly_problems(argv: list[str], cli: click.Group) -> list[str]:
    command, args, path = cli, list(argv[1:]), ["zixly"]
    while isinstance(command, click.Group):
        if not args or args[0].startswith("-"):
            return [f"`{' '.join(path)}` is a group: name one of its commands ({', '.join(sorted(command.commands))})"]
        name = args.pop(0)
        if name not in command.commands:
            return [f"`{' '.join(path + [name])}` is not a command (known: {', '.join(sorted(command.commands))})"]
        command, path = command.commands[name], path + [name]
    try:
        command.make_context(" ".join(path), args)  # parses options and arguments; runs nothing
    except click.ClickException as exc:
        return [f"`{' '.join(argv)}`: {exc.format_message()}"]
    return []


def _gunicorn_problems(argv: list[str], root: Path) -> list[str]:
    targets = [a for a in argv[1:] if GUNICORN_APP.match(a)]
    if len(targets) != 1:
        return [f"`{' '.join(argv)}` names no single `module:app` for gunicorn"]
    module, attr = targets[0].split(":")
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    if not path.exists():
        return [f"gunicorn app module {module} does not exist ({path.relative_to(root)})"]
    assigned = {t.id for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    return [] if attr in assigned else [f"{module} defines no `{attr}` for gunicorn"]


def env_names(service: dict) -> list[str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return [item.split("=", 1)[0] for item in env]
    return list(env)


def env_problems(compose: dict, known: set[str]) -> list[str]:
    """Every variable a Zixly service sets must be one the code (or a listed library) reads: a typo'd or
    stale name would otherwise be silently ignored."""
    return [f"service {name} sets {var}, which nothing reads"
            for name, svc in zixly_services(compose).items() for var in env_names(svc) if var not in known]


def secret_problems(compose: dict) -> list[str]:
    """A secret-looking variable must come from the environment (`${VAR}`), never a literal in the file."""
    problems = []
    for name, svc in compose.get("services", {}).items():
        env = svc.get("environment") or {}
        items = dict(i.split("=", 1) if "=" in i else (i, None) for i in env) if isinstance(env, list) else env
        for var, value in items.items():
            if SECRET_NAME.search(var) and value not in (None, "") and not INTERPOLATION.fullmatch(str(value)):
                problems.append(f"service {name}: {var} is written in the file; take it from .env as ${{{var}}}")
    return problems


def interpolation_problems(compose_text: str, env_example_text: str) -> list[str]:
    """Every `${VAR}` the file takes from the environment is listed in .env.example, so an operator sees it."""
    listed = {line.split("=", 1)[0].strip() for line in env_example_text.splitlines()
              if "=" in line and not line.lstrip().startswith("#")}
    used = {m.group(1) for m in INTERPOLATION.finditer(compose_text)}
    return [f"${{{var}}} is used but not listed in .env.example" for var in sorted(used - listed)]


def _published(port) -> tuple[str, str, str] | None:
    """(host ip, host port, protocol) of one `ports` entry, or None when Docker picks the host port."""
    if isinstance(port, dict):
        if not port.get("published"):
            return None
        return port.get("host_ip", "0.0.0.0"), str(port["published"]), port.get("protocol", "tcp")
    spec, _, proto = str(port).partition("/")
    parts = spec.rsplit(":", 2)
    if len(parts) == 1:
        return None
    host_ip = parts[0] if len(parts) == 3 else "0.0.0.0"
    return host_ip.strip("[]"), parts[-2], proto or "tcp"


def port_problems(compose: dict) -> list[str]:
    """No two containers may publish the same host port (replicas of one service count as several)."""
    taken: list[tuple[str, str, str]] = []  # (host ip, port/protocol, service)
    problems = []
    for name, svc in compose.get("services", {}).items():
        replicas = (svc.get("deploy") or {}).get("replicas", 1)
        for port in svc.get("ports") or []:
            published = _published(port)
            if published is None:
                continue
            host_ip, host_port, proto = published
            key = f"{host_port}/{proto}"
            if replicas > 1:
                problems.append(f"service {name} has {replicas} replicas but publishes fixed host port {key}")
            for ip, other_key, owner in taken:
                if other_key == key and (ip == host_ip or "0.0.0.0" in (ip, host_ip)):
                    problems.append(f"host port {key}: {owner} and {name} both publish it")
            taken.append((host_ip, key, name))
    return problems


def mount_problems(compose: dict, root: Path) -> list[str]:
    """Bind-mounted files exist in the repository; named volumes are declared at the top level."""
    declared = set(compose.get("volumes") or {})
    problems = []
    for name, svc in compose.get("services", {}).items():
        for volume in svc.get("volumes") or []:
            if isinstance(volume, dict):
                source = volume.get("source")
            elif ":" in str(volume):
                source = str(volume).split(":", 1)[0]
            else:
                source = None  # `/path` alone: an anonymous volume
            if not source:
                continue
            if source.startswith((".", "/", "~")):
                if not (root / source).exists():
                    problems.append(f"service {name} mounts {source}, which does not exist")
            elif source not in declared:
                problems.append(f"service {name} uses volume {source}, not declared under `volumes:`")
    return problems


def is_one_shot(service: dict) -> bool:
    return str(service.get("restart", "no")) == "no"


def one_shot_services(compose: dict) -> set[str]:
    """Services others wait on to complete: jobs such as `init`, judged by their exit code."""
    return {dep for svc in compose.get("services", {}).values() if isinstance(svc.get("depends_on"), dict)
            for dep, spec in svc["depends_on"].items() if (spec or {}).get("condition") == ONE_SHOT_CONDITION}


def dependency_problems(compose: dict) -> list[str]:
    """`depends_on` names real services with a condition that can be met: healthy needs a health check,
    completed-successfully needs a one-shot service."""
    services = compose.get("services", {})
    problems = []
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            problems.append(f"service {name}: depends_on without conditions (only waits for the container to start)")
            continue
        for dep, spec in deps.items():
            condition = (spec or {}).get("condition")
            if dep not in services:
                problems.append(f"service {name} depends on {dep}, which is not a service")
            elif condition not in CONDITIONS:
                problems.append(f"service {name} -> {dep}: unknown condition {condition!r}")
            elif condition == "service_healthy" and not _has_healthcheck(services[dep]):
                problems.append(f"service {name} waits for {dep} to be healthy, but {dep} has no health check")
            elif condition == ONE_SHOT_CONDITION and not is_one_shot(services[dep]):
                problems.append(f"service {name} waits for {dep} to complete, but {dep} restarts (never completes)")
    return problems


def _has_healthcheck(service: dict) -> bool:
    check = service.get("healthcheck") or {}
    return bool(check.get("test")) and not check.get("disable")


def healthcheck_problems(compose: dict) -> list[str]:
    """Every long-running service has a health check (one-shot jobs are judged by their exit code)."""
    jobs = one_shot_services(compose)
    return [f"service {name} has no health check" for name, svc in compose.get("services", {}).items()
            if name not in jobs and not _has_healthcheck(svc)]
