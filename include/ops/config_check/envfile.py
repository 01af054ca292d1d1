"""The ``.env`` reader and writer: parsed with python-dotenv, written atomically with mode 0600.

``parse_env_file`` keeps what a check needs beyond the values: the line of every variable and the syntax
problems (a line python-dotenv cannot parse, a name set twice). ``write_env`` fills the ``change-me``
placeholders of ``.env.example`` with generated secrets; ``backup_config`` makes ``<name>.backup.<time>``.
"""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from dotenv.parser import parse_stream

from include.ops.config_check.values import PLACEHOLDER, Problem
from include.ops.settings import PROJECT_ROOT
from model.fsio import atomic_write_text

ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
ENV_MODE = 0o600  # env files hold secrets: owner read/write only
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAIN = re.compile(r"^[^\s'\"\\#]([^\n\\#]*[^\s\\#])?$|^$")  # safe unquoted in dotenv and docker-compose


def _bindings(text: str):
    """python-dotenv's bindings of ``text``: key (None for comments/blank), value, original line, error."""
    return parse_stream(io.StringIO(text))


def parse_env_file(path: Path) -> tuple[dict[str, str], dict[str, int], list[Problem]]:
    """Parse an env file: ``(values, line of each variable, syntax problems)``; comments and blanks skipped."""
    path = Path(path)
    return parse_env_text(path.read_text(encoding="utf-8"), str(path))


def parse_env_text(text: str, path: str) -> tuple[dict[str, str], dict[str, int], list[Problem]]:
    """:func:`parse_env_file` of ``text`` read from ``path`` (named in the problems)."""
    values: dict[str, str] = {}
    lines: dict[str, int] = {}
    problems: list[Problem] = []
    for binding in _bindings(text):
        number, raw = binding.original.line, binding.original.string.strip()
        if binding.key is None and not binding.error:
            continue
        key = binding.key or ""
        if binding.error or binding.value is None or not _NAME.match(key):
            problems.append(
                Problem(f"{path}:{number}", f"not a KEY=value line: {raw[:60]!r}", "write KEY=value")
            )
            continue
        if key in values:
            problems.append(
                Problem(
                    f"{path}:{number}", f"{key} is set again (first on line {lines[key]})", "keep one line"
                )
            )
        values[key], lines[key] = binding.value, number
    return values, lines, problems


def example_variables(example: Path = ENV_EXAMPLE) -> set[str]:
    """Names set (``KEY=``) in the env example, commented-out documentation lines excluded."""
    return set(parse_env_file(example)[0])


def format_line(key: str, value: str) -> str:
    """``KEY=value``, the value quoted only when dotenv/docker-compose would read it differently bare."""
    if _PLAIN.match(value):
        return f"{key}={value}"
    if "'" not in value and "\n" not in value:
        return f"{key}='{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{key}="{escaped}"'


def new_secret(name: str) -> str:
    """A generated value for the secret ``name`` (a Fernet key for ``AIRFLOW_FERNET_KEY``)."""
    if name == "AIRFLOW_FERNET_KEY":
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()
    return secrets.token_urlsafe(32)


def _fill(example_text: str, current: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Lines of the example with ``current``'s real values kept and every placeholder replaced by a secret."""
    lines, generated = [], []
    for binding in _bindings(example_text):
        key, value = binding.key, binding.value
        if key is None or value is None or binding.error:
            lines.append(binding.original.string.rstrip("\n"))
            continue
        if current.get(key) and PLACEHOLDER not in current[key]:
            value = current[key]
        elif PLACEHOLDER in value:
            value = new_secret(key)
            generated.append(key)
        lines.append(format_line(key, value))
    return lines, generated


def generate_env(example_text: str, existing: Mapping[str, str] | None = None) -> str:
    """The example's text with ``existing``'s real values kept and every ``change-me`` value a new secret."""
    return "\n".join(_fill(example_text, existing or {})[0]) + "\n"


def write_env(env_file: Path, example: Path = ENV_EXAMPLE) -> tuple[Path, list[str]]:
    """Create or complete ``env_file`` from ``example`` (mode 0600, previous file backed up first).

    Real values already in ``env_file`` are kept, placeholders get generated secrets, variables only in
    ``env_file`` are carried over at the end. Returns the path and the names of the generated secrets.
    """
    env_file = Path(env_file)
    current = parse_env_file(env_file)[0] if env_file.exists() else {}
    lines, generated = _fill(Path(example).read_text(encoding="utf-8"), current)
    known = example_variables(example)
    extra = [format_line(k, v) for k, v in current.items() if k not in known]
    if extra:
        lines += ["", "# ---- kept from the previous file ----", *extra]
    if env_file.exists():
        backup_config(env_file)
    atomic_write_text(env_file, "\n".join(lines) + "\n", mode=ENV_MODE)
    return env_file, sorted(generated)


def backup_config(env_file: Path, dest_dir: Path | None = None) -> Path:
    """Copy ``env_file`` to ``<dest_dir or its folder>/<name>.backup.<YYYYmmdd-HHMMSS>`` (mode 0600)."""
    env_file = Path(env_file)
    if not env_file.exists():
        raise FileNotFoundError(f"{env_file} does not exist: nothing to back up")
    dest_dir = Path(dest_dir) if dest_dir else env_file.parent
    dest_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    dest = dest_dir / f"{env_file.name}.backup.{stamp}"
    n = 1
    while dest.exists():
        dest = dest_dir / f"{env_file.name}.backup.{stamp}.{n}"
        n += 1
    atomic_write_text(dest, env_file.read_text(encoding="utf-8"), mode=ENV_MODE)
    return dest


def install_env(new_file: Path, env_file: Path) -> Path | None:
    """Back up ``env_file`` (when it exists) and replace it atomically with ``new_file`` (mode 0600)."""
    backup = backup_config(env_file) if Path(env_file).exists() else None
    atomic_write_text(Path(env_file), Path(new_file).read_text(encoding="utf-8"), mode=ENV_MODE)
    return backup
