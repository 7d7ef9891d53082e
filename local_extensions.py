"""The template's Jinja extension: bad answers are refused before cookiecutter writes anything.

cookiecutter makes the project folder before hooks/pre_gen_project.py runs, so an answer that breaks the
folder's own name (longer than the filesystem allows, "a/b", "..") would end the bake with a traceback or leave
a folder behind. cookiecutter.json's last variable, private and rendered once every answer is known but before
any file is written, passes the answers through ``refuse_bad_answers``: the pre-generation hook's own rules, and
its one line per bad answer, with nothing written. The hook still runs them too, for anything that renders the
template without this extension.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cookiecutter.exceptions import FailedHookException
from jinja2 import Environment
from jinja2.ext import Extension


def _hook_rules() -> Callable[[dict[str, str]], list[str]]:
    spec = importlib.util.spec_from_file_location(
        "pre_gen_rules", Path(__file__).parent / "hooks" / "pre_gen_project.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    validate: Callable[[dict[str, str]], list[str]] = module.validate
    return validate


_validate = _hook_rules()


def refuse_bad_answers(answers: Mapping[str, Any]) -> str:
    problems = _validate({key: str(value) for key, value in answers.items() if not key.startswith("_")})
    if problems:
        raise FailedHookException("\n".join(f"error: {problem}" for problem in problems))
    return ""


class AnswersGuard(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["refuse_bad_answers"] = refuse_bad_answers
