"""The template's Jinja extension: each bad answer is refused right after it is given, before anything is written.

cookiecutter renders the private ``__<answer>_checked`` variable that cookiecutter.json places after each typed
answer as soon as that answer is known: interactively, between its prompt and the next one; with ``--no-input``,
in the same order. Each passes the answers so far through ``refuse_bad_answer``, the pre-generation hook's own
rule for that answer, which stops the bake with the hook's one line naming the field (the field the user gave,
for a value made from it) and what it accepts. The last private variable runs every rule again once all answers
are known, and the hook does too, for anything that renders the template without this extension. Choice answers
need no check of their own: cookiecutter's prompt offers only the choices.

cookiecutter makes the project folder before hooks/pre_gen_project.py runs, so an answer that breaks the
folder's own name (longer than the filesystem allows, "a/b", "..") must be refused here, with nothing written.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from cookiecutter.exceptions import FailedHookException
from jinja2 import Environment
from jinja2.ext import Extension


def _hook_rules() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "pre_gen_rules", Path(__file__).parent / "hooks" / "pre_gen_project.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_rules = _hook_rules()


def _answers(context: Mapping[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in context.items() if not key.startswith("_")}


def refuse_bad_answer(context: Mapping[str, Any], key: str) -> str:
    """Stop the bake with one line when the answer ``key`` breaks its rule; render nothing otherwise."""
    line = _rules.problem(_answers(context), key)
    if line is not None:
        raise FailedHookException(f"error: {line}")
    return ""


def refuse_bad_answers(context: Mapping[str, Any]) -> str:
    """Stop the bake with one line per bad answer, every rule at once; render nothing otherwise."""
    problems = _rules.validate(_answers(context))
    if problems:
        raise FailedHookException("\n".join(f"error: {problem}" for problem in problems))
    return ""


class AnswersGuard(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["refuse_bad_answer"] = refuse_bad_answer
        environment.filters["refuse_bad_answers"] = refuse_bad_answers
