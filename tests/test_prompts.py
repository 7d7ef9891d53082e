"""Answering cookiecutter's questions on a terminal: a bad answer is refused right after it is typed.

Each test drives the real `cookiecutter` prompt through a pseudo-terminal (pexpect), as a user types.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
import pytest

TEMPLATE = Path(__file__).resolve().parents[1]


def prompt(tmp_path: Path) -> pexpect.spawn:
    """cookiecutter asking its questions, baking into ``tmp_path / "out"``."""
    (tmp_path / "out").mkdir()
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200", "HOME": str(tmp_path)}
    args = ["-m", "cookiecutter", str(TEMPLATE), "-o", str(tmp_path / "out")]
    return pexpect.spawn(sys.executable, args, env=env, encoding="utf-8", timeout=60, dimensions=(50, 200))


def answer(session: pexpect.spawn, question: str, text: str) -> None:
    session.expect_exact(question)
    session.expect_exact("): ")  # the default, then the cursor
    session.sendline(text)
    session.expect_exact(f"{text}\r\n")  # the terminal's echo of what was typed


def refused(session: pexpect.spawn) -> str:
    """What the session printed after the last answer, once it has ended; fails unless it exited 1."""
    session.expect(pexpect.EOF)
    session.close()
    assert session.exitstatus == 1, session.before
    return str(session.before)


@pytest.mark.parametrize(
    ("answers", "line", "next_question"),
    [
        pytest.param(
            [("project_name", "Orders Service"), ("project_slug", "My Service")],
            "error: project_slug: 'My Service' must be a DNS-1123 label",
            "package_name",
            id="slug",
        ),
        pytest.param(
            [("project_name", "!!!"), ("project_slug", "")],
            "error: project_name: '!!!' makes the project_slug '', which must be a DNS-1123 label",
            "package_name",
            id="name-without-letters",
        ),
        pytest.param(
            [("project_name", "Orders Service"), ("project_slug", ""), ("package_name", "json")],
            "error: package_name: 'json' must not be the name of a standard-library module",
            "description",
            id="package",
        ),
        pytest.param(
            [("project_name", ""), ("project_slug", ""), ("package_name", ""), ("description", ""),
             ("author_name", ""), ("author_email", "nobody")],
            "error: author_email: 'nobody' must look like an e-mail address",
            "python_version",
            id="email",
        ),
    ],
)  # fmt: skip
def test_a_bad_answer_is_refused_at_its_prompt(
    tmp_path: Path, answers: list[tuple[str, str]], line: str, next_question: str
) -> None:
    """A bad typed answer ends the session at once with one line naming the field and what it accepts: the next
    question is never asked, and nothing is written."""
    session = prompt(tmp_path)
    for question, text in answers:
        answer(session, question, text)
    said = refused(session)
    lines = [text.strip() for text in said.splitlines() if text.strip()]
    assert len(lines) == 1 and lines[0].startswith(line), said
    assert next_question not in said
    assert list((tmp_path / "out").iterdir()) == []


def test_a_bad_port_is_refused_before_the_choices(tmp_path: Path) -> None:
    """The port, typed after the Python version is chosen, is refused before the first yes/no question."""
    session = prompt(tmp_path)
    for question in ("project_name", "project_slug", "package_name", "description", "author_name", "author_email"):
        answer(session, question, "")
    session.expect_exact("python_version")
    session.expect_exact("Choose from")
    session.sendline("2")
    answer(session, "port", "0")
    said = refused(session)
    assert "error: port: '0' must be a whole number from 1 to 65535" in said
    assert "include_k8s" not in said


def test_the_defaults_bake_interactively(tmp_path: Path) -> None:
    """Pressing Enter at every question bakes the default project."""
    session = prompt(tmp_path)
    while session.expect([r"\): ", pexpect.EOF]) == 0:
        session.sendline("")
    session.close()
    assert session.exitstatus == 0, session.before
    assert (tmp_path / "out" / "orders-service" / "src" / "orders_service" / "app.py").is_file()
