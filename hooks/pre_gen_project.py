"""Refuse bad answers before any file of the project is written.

Every answer ends up in a folder name, an import, a manifest or a shell command, where a bad one fails late
and far from its cause. Here it fails at once, with one line per answer naming the field and the rule. A value cookiecutter made
from an earlier answer (the slug from the name, the package from the slug) is reported against the answer the
user gave, since that is the one to change. The standard library and python-slugify only: the hook runs in
whatever Python runs cookiecutter, which depends on python-slugify for its own ``slugify`` filter.
"""

from __future__ import annotations

import contextlib
import json
import keyword
import re
import sys
import tempfile
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path

from slugify import slugify

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
    "management_port": _port,
    **{key: _choice(key) for key in CHOICES},
}


# The answers whose default cookiecutter.json makes from an earlier answer, and how it makes them.
SOURCES: dict[str, tuple[str, Callable[[str], str]]] = {
    "project_slug": ("project_name", lambda name: slugify(name, max_length=63)),
    "package_name": ("project_slug", lambda slug: slug.replace("-", "_")),
}


def _made_from_source(answers: Mapping[str, str], key: str) -> bool:
    """Whether ``key``'s value is the one cookiecutter.json makes from its source answer (its default)."""
    source, make = SOURCES[key]
    return answers.get(key, "") == make(answers.get(source, ""))


def _origin(answers: Mapping[str, str], key: str) -> str:
    """The answer ``key``'s value was made from, followed back to one that was given rather than made."""
    while key in SOURCES and _made_from_source(answers, key):
        key = SOURCES[key][0]
    return key


def problem(answers: Mapping[str, str], key: str) -> str | None:
    """The line refusing ``key``'s answer, or None when it breaks no rule.

    A bad value made from an earlier answer names that answer, the one to change ("project_name: '!!!' makes
    the project_slug ''..."), rather than a field the user never typed.
    """
    value = answers.get(key, "")
    reason = RULES[key](value)
    if reason is None:
        return None
    origin = _origin(answers, key)
    if origin == key:
        return f"{key}: {_show(value)} {reason}"
    return (
        f"{origin}: {_show(answers.get(origin, ''))} makes the {key} {_show(value)}, which {reason}:"
        f" change the {origin}, or give the {key}"
    )


def validate(answers: Mapping[str, str]) -> list[str]:
    """One line per bad answer, naming the field and the rule it breaks; empty when every answer is good.

    A missing answer counts as empty, so a rule still names it. A bad value made from an answer that is bad
    itself adds no line: fixing that answer fixes both.
    """
    problems, refused = [], set()
    for key in RULES:
        line = problem(answers, key)
        if line is None:
            continue
        refused.add(key)
        if key in SOURCES and _made_from_source(answers, key) and SOURCES[key][0] in refused:
            continue
        problems.append(line)
    if answers.get("management_port", "") == answers.get("port", "") != "":
        problems.append(f"management_port: {_show(answers['port'])} must differ from port, the API's")
    return problems


def remove_own_copy(script: str) -> None:
    """Delete this file when it is cookiecutter's rendered copy in the temporary folder.

    cookiecutter writes each rendered hook there and never removes it (it left two files per bake); the
    template's own ``hooks/`` file, which tests import, is never touched.
    """
    path = Path(script).resolve()
    if path.parent == Path(tempfile.gettempdir()).resolve() and path.name.startswith("tmp"):
        with contextlib.suppress(OSError):
            path.unlink()


def main() -> None:
    """Stop the bake with every problem listed at once, so one run is enough to fix them all."""
    remove_own_copy(sys.argv[0])  # Python has read it already
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
