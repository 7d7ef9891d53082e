"""Refuse bad answers before any file of the project is written.

Every answer ends up in a folder name, an import, a manifest or a shell command, where a bad one fails late
and far from its cause. Here it fails at once, with one line per answer naming the field and the rule.
Standard library only: the hook runs in whatever Python runs cookiecutter.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import unicodedata
from collections.abc import Callable

# The lists of cookiecutter.json's choice variables. A hook cannot read that file when it runs, so they are
# repeated here, and tests/test_hooks.py fails when the two disagree.
CHOICES: dict[str, list[str]] = {
    "python_version": ["3.11", "3.12", "3.13"],
    "include_k8s": ["yes", "no"],
    "include_monitoring": ["yes", "no"],
    "include_redis": ["yes", "no"],
    "include_example_api": ["yes", "no"],
    "include_error_reports": ["no", "yes"],
    "include_tracing": ["yes", "no"],
    "include_jobs": ["yes", "no"],
    "ci": ["github", "none"],
    "license": ["MIT", "Apache-2.0", "Proprietary"],
}

# Import names a package of the same name would shadow: the project's dependencies, its tools, and the
# folders its own tooling imports from.
SHADOWED = frozenset(
    {
        "aiosqlite", "alembic", "anyio", "app", "asyncpg", "fastapi", "gunicorn", "httpx", "hypothesis", "mypy",
        "orjson", "prometheus_client", "prometheus_fastapi_instrumentator", "pydantic", "pydantic_settings",
        "pytest", "redis", "ruff", "sentry_sdk", "sqlalchemy", "src", "starlette", "tenacity", "testcontainers",
        "tests", "uvicorn", "uvicorn_worker",
    }
)  # fmt: skip

# "type" is a soft keyword from 3.12 on, which the project may target even when this hook runs on 3.11.
SOFT_KEYWORDS = frozenset({*keyword.softkwlist, "type"})

# fullmatch everywhere: "$" would also accept a trailing newline.
SLUG = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
PACKAGE = re.compile(r"[a-z_][a-z0-9_]*")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PORT = re.compile(r"[1-9][0-9]{0,4}")  # [0-9], not \d, which also matches other scripts' digits
PATH_PARTS = ("/", "\\", "..", "\0")


def _show(value: str) -> str:
    """Quote a value so that control characters stay visible and the message stays on one line."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _control(value: str) -> bool:
    """Tell whether ``value`` holds a control character or line break, which would split the line it goes into."""
    return any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in value)


def _path_like(value: str) -> bool:
    return any(part in value for part in PATH_PARTS)


def _project_name(value: str) -> str | None:
    if not value.strip() or _control(value):
        return "must be non-empty and hold no control characters or line breaks"
    return None


def _one_line(value: str) -> str | None:
    if _control(value):
        return "must be one line with no control characters"
    return None


def _author_name(value: str) -> str | None:
    if not value.strip() or _control(value):
        return "must be non-empty and one line with no control characters"
    return None


def _email(value: str) -> str | None:
    if _control(value) or not EMAIL.fullmatch(value):
        return "must look like an e-mail address: name@domain.tld, without spaces"
    return None


def _port(value: str) -> str | None:
    if not PORT.fullmatch(value) or int(value) > 65535:
        return "must be a whole number from 1 to 65535, with no sign, spaces or leading zeros"
    return None


def _slug(value: str) -> str | None:
    if _path_like(value):
        return "must not contain '/', '\\', '..' or NUL: it names the project folder"
    if len(value) > 63 or not SLUG.fullmatch(value):
        return (
            "must be a DNS-1123 label: lowercase letters, digits and '-', starting with a letter,"
            " ending with a letter or digit, at most 63 characters"
        )
    return None


def _package(value: str) -> str | None:
    if _path_like(value):
        return "must not contain '/', '\\', '..' or NUL: it names the package folder"
    if not PACKAGE.fullmatch(value):
        return "must be a lowercase ASCII Python identifier: a-z, 0-9 and '_', not starting with a digit"
    if keyword.iskeyword(value) or value in SOFT_KEYWORDS:
        return "must not be a Python keyword"
    if value in sys.stdlib_module_names:
        return "must not be the name of a standard-library module, which it would shadow"
    if value in SHADOWED:
        return "must not be the import name of a dependency or tool of the project, which it would shadow"
    return None


def _choice(key: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in CHOICES[key] else f"must be one of {', '.join(CHOICES[key])}"

    return check


RULES: dict[str, Callable[[str], str | None]] = {
    "project_name": _project_name,
    "project_slug": _slug,
    "package_name": _package,
    "description": _one_line,
    "author_name": _author_name,
    "author_email": _email,
    "port": _port,
    **{key: _choice(key) for key in CHOICES},
}


def validate(answers: dict[str, str]) -> list[str]:
    """One line per bad answer, naming the field and the rule it breaks; empty when every answer is good.

    A missing answer counts as empty, so a rule still names it.
    """
    problems = []
    for key, rule in RULES.items():
        value = answers.get(key, "")
        reason = rule(value)
        if reason is not None:
            problems.append(f"{key}: {_show(value)} {reason}")
    return problems


def main() -> None:
    """Stop the bake with every problem listed at once, so one run is enough to fix them all."""
    rendered = json.loads(r"""{{ cookiecutter | jsonify }}""")
    # Private keys hold lists and paths; an answer given as a number in a user config still counts as text.
    answers = {key: str(value) for key, value in rendered.items() if not key.startswith("_")}
    problems = validate(answers)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
