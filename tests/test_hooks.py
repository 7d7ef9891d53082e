"""The hooks: bad answers stop the bake before anything is written; unchosen parts are removed after it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cookiecutter.main import cookiecutter as cookiecutter_main

TEMPLATE = Path(__file__).resolve().parents[1]
DEFAULTS: dict[str, Any] = json.loads((TEMPLATE / "cookiecutter.json").read_text())


def load_hook(name: str) -> ModuleType:
    """Import a hook from its file, unrendered: its Jinja sits in a string literal that only ``main`` reads."""
    spec = importlib.util.spec_from_file_location(name, TEMPLATE / "hooks" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")

# The default answers as cookiecutter renders them: the first of each choice, the Jinja defaults worked out.
GOOD: dict[str, str] = {
    **{key: value[0] if isinstance(value, list) else value for key, value in DEFAULTS.items() if key[0] != "_"},
    "project_slug": "orders-service",
    "package_name": "orders_service",
}


def test_default_answers_pass() -> None:
    """The default answers break no rule."""
    assert pre_gen.validate(GOOD) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("project_slug", "a", id="slug-one-letter"),
        pytest.param("project_slug", "a" * 63, id="slug-63"),
        pytest.param("project_slug", "x-svc2", id="slug-digit-end"),
        pytest.param("package_name", "_private", id="package-underscore"),
        pytest.param("package_name", "x_svc", id="package-plain"),
        pytest.param("project_name", "Café Service", id="name-unicode"),
        pytest.param("description", "", id="description-empty"),
        pytest.param("port", "1", id="port-1"),
        pytest.param("port", "65535", id="port-max"),
        pytest.param("management_port", "8080", id="management-port-other"),
        pytest.param("author_email", "a.b+c@mail.example.co.uk", id="email-plus"),
    ],
)
def test_good_answer_passes(field: str, value: str) -> None:
    """An answer at the edge of its rule is still accepted."""
    assert pre_gen.validate({**GOOD, field: value}) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("project_name", "", id="name-empty"),
        pytest.param("project_name", "   ", id="name-blank"),
        pytest.param("project_name", "Orders\nService", id="name-newline"),
        pytest.param("project_name", "Orders\x00", id="name-nul"),
        pytest.param("project_slug", "", id="slug-empty"),
        pytest.param("project_slug", "my app", id="slug-space"),
        pytest.param("project_slug", "My-App", id="slug-upper"),
        pytest.param("project_slug", "café", id="slug-unicode"),
        pytest.param("project_slug", "a/b", id="slug-slash"),
        pytest.param("project_slug", "a\\b", id="slug-backslash"),
        pytest.param("project_slug", "a..b", id="slug-dotdot"),
        pytest.param("project_slug", "../x", id="slug-parent"),
        pytest.param("project_slug", "app\x00", id="slug-nul"),
        pytest.param("project_slug", "1app", id="slug-leading-digit"),
        pytest.param("project_slug", "-app", id="slug-leading-dash"),
        pytest.param("project_slug", "app-", id="slug-trailing-dash"),
        pytest.param("project_slug", "my_app", id="slug-underscore"),
        pytest.param("project_slug", "app\n", id="slug-trailing-newline"),
        pytest.param("project_slug", "a" * 64, id="slug-64"),
        pytest.param("package_name", "", id="package-empty"),
        pytest.param("package_name", "my app", id="package-space"),
        pytest.param("package_name", "MyApp", id="package-upper"),
        pytest.param("package_name", "café", id="package-unicode"),
        pytest.param("package_name", "a/b", id="package-slash"),
        pytest.param("package_name", "..", id="package-dotdot"),
        pytest.param("package_name", "1app", id="package-leading-digit"),
        pytest.param("package_name", "my-app", id="package-dash"),
        pytest.param("package_name", "class", id="package-keyword"),
        pytest.param("package_name", "match", id="package-soft-keyword"),
        pytest.param("package_name", "type", id="package-soft-keyword-312"),
        pytest.param("package_name", "json", id="package-stdlib-json"),
        pytest.param("package_name", "asyncio", id="package-stdlib-asyncio"),
        pytest.param("package_name", "typing", id="package-stdlib-typing"),
        pytest.param("package_name", "fastapi", id="package-dep-fastapi"),
        pytest.param("package_name", "redis", id="package-dep-redis"),
        pytest.param("package_name", "sqlalchemy", id="package-dep-sqlalchemy"),
        pytest.param("package_name", "tests", id="package-tests"),
        pytest.param("description", "two\nlines", id="description-newline"),
        pytest.param("description", "red \x1b[31m", id="description-escape"),
        pytest.param("author_name", "", id="author-empty"),
        pytest.param("author_name", "Ann\rBee", id="author-cr"),
        pytest.param("author_email", "", id="email-empty"),
        pytest.param("author_email", "platform", id="email-no-at"),
        pytest.param("author_email", "a@b", id="email-no-dot"),
        pytest.param("author_email", "a b@c.d", id="email-space"),
        pytest.param("author_email", "a@@b.c", id="email-two-at"),
        pytest.param("author_email", "@example.com", id="email-no-name"),
        pytest.param("port", "", id="port-empty"),
        pytest.param("port", "0", id="port-0"),
        pytest.param("port", "65536", id="port-65536"),
        pytest.param("port", "70000", id="port-70000"),
        pytest.param("port", "abc", id="port-abc"),
        pytest.param("port", "+80", id="port-plus"),
        pytest.param("port", " 80", id="port-space"),
        pytest.param("port", "080", id="port-leading-zero"),
        pytest.param("port", "\uff18\uff10", id="port-fullwidth-digits"),
        pytest.param("management_port", "0", id="management-port-0"),
        pytest.param("management_port", "8000", id="management-port-is-port"),
        pytest.param("python_version", "2.7", id="python-2.7"),
        pytest.param("python_version", "3.10", id="python-3.10"),
        pytest.param("include_k8s", "maybe", id="k8s-maybe"),
        pytest.param("include_k8s", "Yes", id="k8s-capital"),
        pytest.param("include_monitoring", "", id="monitoring-empty"),
        pytest.param("include_redis", "true", id="redis-true"),
        pytest.param("include_example_api", "n", id="example-api-n"),
        pytest.param("include_tracing", "on", id="tracing-on"),
        pytest.param("include_error_reports", "on", id="error-reports-on"),
    ],
)
def test_bad_answer_yields_one_line_naming_the_field(field: str, value: str) -> None:
    """A bad answer yields exactly one problem, which starts with the field's name."""
    problems = pre_gen.validate({**GOOD, field: value})
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{field}: ")


def test_every_problem_is_reported_at_once() -> None:
    """With no answers at all, every field that may not be empty is named, so one run is enough to fix them all;
    the slug and the package, made from the empty name, follow it without a line of their own."""
    fields = [problem.split(":")[0] for problem in pre_gen.validate({})]
    made = {"description", "project_slug", "package_name"}
    assert fields == [field for field in pre_gen.RULES if field not in made]


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        pytest.param(
            {"project_name": "!!!", "project_slug": "", "package_name": ""},
            "project_name: '!!!' makes the project_slug '', which must be a DNS-1123 label",
            id="name-without-letters",
        ),
        pytest.param(
            {"project_name": "3D Prints", "project_slug": "3d-prints", "package_name": "3d_prints"},
            "project_name: '3D Prints' makes the project_slug '3d-prints', which must be a DNS-1123 label",
            id="name-leading-digit",
        ),
        pytest.param(
            {"project_name": "Redis", "project_slug": "redis", "package_name": "redis"},
            "project_name: 'Redis' makes the package_name 'redis', which must not be the import name of a dependency",
            id="name-makes-a-dependency",
        ),
        pytest.param(
            {"project_slug": "json", "package_name": "json"},
            "project_slug: 'json' makes the package_name 'json', which must not be the name of a standard-library",
            id="slug-makes-stdlib",
        ),
        pytest.param(
            {"project_slug": "My Service", "package_name": "My Service"},
            "project_slug: 'My Service' must be a DNS-1123 label",
            id="bad-slug-alone",
        ),
    ],
)
def test_a_bad_made_value_names_the_answer_it_came_from(answers: dict[str, str], expected: str) -> None:
    """A slug or package made from a typed answer is refused in one line naming that answer, which is the one to
    change, and nothing about the fields made from a bad one."""
    problems = pre_gen.validate({**GOOD, **answers})
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_sources_make_what_cookiecutter_json_makes(tmp_path: Path) -> None:
    """The hook's SOURCES make the slug and the package as cookiecutter.json's defaults do, so the hook can tell
    a made value from a typed one."""
    name = "Ça Déborde: 2 Tickets & More"
    project = Path(
        cookiecutter_main(str(TEMPLATE), no_input=True, output_dir=str(tmp_path), extra_context={"project_name": name})
    )
    slug = pre_gen.SOURCES["project_slug"][1](name)
    assert project.name == slug
    assert (project / "src" / pre_gen.SOURCES["package_name"][1](slug)).is_dir()


def test_every_answer_has_a_rule() -> None:
    """Each answer of cookiecutter.json is checked, so a new answer cannot arrive unchecked."""
    assert set(pre_gen.RULES) == {key for key in DEFAULTS if not key.startswith("_")}


def test_choices_match_cookiecutter_json() -> None:
    """The hook's choice lists are exactly the list answers of cookiecutter.json, so the two cannot drift."""
    lists = {key: value for key, value in DEFAULTS.items() if isinstance(value, list) and not key.startswith("_")}
    assert lists == pre_gen.CHOICES


def test_removals_name_real_choices() -> None:
    """Every removal row is keyed by a choice answer and one of its values."""
    for key, value in post_gen.REMOVALS:
        assert value in pre_gen.CHOICES[key], (key, value)


@pytest.mark.parametrize("hook", ["pre_gen_project", "post_gen_project"])
def test_hook_jinja_is_one_literal(hook: str) -> None:
    """A hook's only Jinja is the one literal holding the answers, so the rest of it is plain, testable Python."""
    text = (TEMPLATE / "hooks" / f"{hook}.py").read_text()
    assert text.count("{{") == 1
    assert text.count('r"""{{ cookiecutter | jsonify }}"""') == 1
    assert "{%" not in text
    assert "{#" not in text


def cli_bake(out: Path, *answers: str) -> subprocess.CompletedProcess[str]:
    """Bake through the real command line, as a user would, with the cookiecutter of this environment."""
    cmd = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), *answers, "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


# cookiecutter itself refuses a value outside a choice list given on the command line, before the hook runs.
NOT_A_CHOICE = "provided for choice variable {field},"


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        pytest.param("project_name=Orders\tService", "project_name", id="name-tab"),
        pytest.param("project_slug=My App", "project_slug", id="slug-space"),
        pytest.param("project_slug=1app", "project_slug", id="slug-leading-digit"),
        pytest.param("project_slug=app-", "project_slug", id="slug-trailing-dash"),
        pytest.param("project_slug=café", "project_slug", id="slug-unicode"),
        pytest.param("project_slug=" + "a" * 64, "project_slug", id="slug-64"),
        pytest.param("project_slug=../escape", "project_slug", id="slug-parent"),
        pytest.param("project_slug={tmp}/absolute", "project_slug", id="slug-absolute"),
        pytest.param("package_name=class", "package_name", id="package-keyword"),
        pytest.param("package_name=json", "package_name", id="package-stdlib"),
        pytest.param("package_name=fastapi", "package_name", id="package-dependency"),
        pytest.param("package_name=../pkg", "package_name", id="package-parent"),
        pytest.param("package_name=my-app", "package_name", id="package-dash"),
        pytest.param("description=two\nlines", "description", id="description-newline"),
        pytest.param("author_email=nobody", "author_email", id="email"),
        pytest.param("port=0", "port", id="port-0"),
        pytest.param("port=70000", "port", id="port-70000"),
        pytest.param("port= 80", "port", id="port-space"),
        pytest.param("port=9000", "management_port", id="port-is-management-port"),
        pytest.param("python_version=2.7", "python_version", id="python-2.7"),
        pytest.param("include_k8s=maybe", "include_k8s", id="k8s-maybe"),
        pytest.param("include_redis=false", "include_redis", id="redis-false"),
        pytest.param("include_example_api=none", "include_example_api", id="example-api-none"),
        pytest.param("include_tracing=off", "include_tracing", id="tracing-off"),
        pytest.param("include_error_reports=sentry", "include_error_reports", id="error-reports-sentry"),
        pytest.param("project_slug=a/b", "project_slug", id="slug-nested"),
        pytest.param("project_slug=..", "project_slug", id="slug-dotdot"),
        pytest.param(f"project_slug={'a' * 300}", "project_slug", id="slug-longer-than-a-file-name"),
    ],
)
def test_cli_refuses_bad_answer_and_leaves_nothing(tmp_path: Path, answer: str, field: str) -> None:
    """A bad answer on the command line fails the bake, names the field, and leaves no folder behind."""
    out = tmp_path / "out"
    out.mkdir()
    result = cli_bake(out, answer.format(tmp=tmp_path))
    assert result.returncode != 0
    output = result.stderr + result.stdout
    expected = NOT_A_CHOICE if field in pre_gen.CHOICES else "error: {field}: "
    assert expected.format(field=field) in output, output
    assert list(out.iterdir()) == []
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize(
    ("answer", "line"),
    [
        pytest.param("project_slug=My Service", "error: project_slug: 'My Service' must be a DNS-1123", id="slug"),
        pytest.param("project_name=!!!", "error: project_name: '!!!' makes the project_slug ''", id="name"),
        pytest.param("project_name=Redis", "error: project_name: 'Redis' makes the package_name", id="name-package"),
    ],
)
def test_cli_names_the_answer_given_and_only_it(tmp_path: Path, answer: str, line: str) -> None:
    """A bad answer, or a bad value made from it, is one line naming the answer given, none about the fields made
    from it."""
    result = cli_bake(tmp_path, answer)
    assert result.returncode == 1
    errors = [text for text in (result.stdout + result.stderr).splitlines() if text.strip()]
    assert len(errors) == 1 and errors[0].startswith(line), errors


def test_cli_good_bake(tmp_path: Path) -> None:
    """Good answers bake a project folder named by the slug and print the next steps, starting with a ``cd`` that
    is right from where cookiecutter was run (``-o`` elsewhere: the full path)."""
    result = cli_bake(tmp_path, "project_slug=x-svc", "package_name=x_svc")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x-svc").is_dir()
    assert f"  cd {tmp_path / 'x-svc'}\n" in result.stdout


def test_cli_bake_here_says_cd_slug(tmp_path: Path) -> None:
    """Baked into the folder cookiecutter runs in, the next steps say ``cd <slug>``."""
    cmd = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE)]
    env = {**os.environ, "PWD": str(tmp_path)}
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "  cd orders-service\n" in result.stdout


def test_a_bake_leaves_no_hook_script_in_the_temporary_folder(tmp_path: Path) -> None:
    """cookiecutter writes each rendered hook to the temporary folder and leaves it; the hooks delete their copy."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    cmd = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", str(tmp_path / "out")]
    env = {**os.environ, "TMPDIR": str(scratch)}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "orders-service").is_dir()
    assert list(scratch.iterdir()) == []


def test_cli_unicode_name_bakes_ascii_names(tmp_path: Path) -> None:
    """A project name with accents gives an ASCII slug and package, which pass the rules."""
    result = cli_bake(tmp_path, "project_name=Café Service")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cafe-service" / "src" / "cafe_service").is_dir()


def test_cli_unchosen_parts_are_absent(tmp_path: Path) -> None:
    """Answering no to the optional parts bakes a project without their files, and warns of nothing."""
    answers = [
        "include_k8s=no",
        "include_monitoring=no",
        "include_redis=no",
        "include_example_api=no",
        "include_tracing=no",
        "include_jobs=no",
        "ci=none",
    ]
    result = cli_bake(tmp_path, *answers)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    project = tmp_path / "orders-service"
    package = project / "src" / "orders_service"
    assert project.is_dir() and (package / "app.py").is_file()
    for gone in ("k8s", "monitoring", ".github", "tests/redis_cache", "tests/items", "tests/tracing", "tests/jobs"):
        assert not (project / gone).exists(), gone
    assert sorted(path.name for path in (package / "features").iterdir()) == ["__init__.py"]
    assert not (package / "items").exists()
    assert sorted(path.name for path in (package / "migrations" / "versions").iterdir()) == ["README.md"]


@pytest.mark.parametrize(
    ("answers", "kept"),
    [
        pytest.param({"include_k8s": "yes", "include_monitoring": "yes"}, {"k8s", "monitoring"}, id="everything"),
        pytest.param({"include_k8s": "no", "include_monitoring": "yes"}, {"monitoring"}, id="no-k8s"),
        pytest.param({"include_k8s": "yes", "include_monitoring": "no"}, {"k8s"}, id="no-monitoring"),
        pytest.param({"include_k8s": "no", "include_monitoring": "no"}, set(), id="minimal"),
    ],
)
def test_remove_unselected(tmp_path: Path, answers: dict[str, str], kept: set[str]) -> None:
    """Each option answered no loses its folders; the others and the rest of the project stay."""
    for name in ("k8s", "monitoring"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "file.yaml").write_text("x: 1\n")
    (tmp_path / "pyproject.toml").write_text("")
    assert post_gen.remove_unselected(answers, tmp_path) == []
    assert {path.name for path in tmp_path.iterdir()} == kept | {"pyproject.toml"}


def test_missing_removal_path_is_reported(tmp_path: Path) -> None:
    """A removal path that the project lacks gives a warning naming the answer, since the table has drifted."""
    warnings = post_gen.remove_unselected({"include_k8s": "no"}, tmp_path)
    assert len(warnings) == 1
    assert warnings[0].startswith("include_k8s=no: k8s ")


def test_a_path_inside_a_removed_folder_is_no_drift(tmp_path: Path) -> None:
    """A part's file inside a folder that an earlier answer removed (the jobs' PodMonitor under monitoring, their
    manifests under k8s) gives no warning; with the folder kept, the part's files alone go."""
    base, prometheus = tmp_path / "k8s" / "base", tmp_path / "monitoring" / "prometheus"
    base.mkdir(parents=True)
    prometheus.mkdir(parents=True)
    for name in ("deployment", "worker-deployment", "worker-pdb", "worker-networkpolicy", "worker-scaledobject"):
        (base / f"{name}.yaml").write_text("x: 1\n")
    (prometheus / "worker-podmonitor.yaml").write_text("x: 1\n")
    (tmp_path / "monitoring" / "grafana").mkdir()
    (tmp_path / "monitoring" / "grafana" / "jobs-dashboard.json").write_text("{}")
    answers = {"include_k8s": "yes", "include_monitoring": "no", "include_jobs": "no", "package_name": "p"}
    warnings = post_gen.remove_unselected(answers, tmp_path)
    assert [path.name for path in base.iterdir()] == ["deployment.yaml"]
    assert not (tmp_path / "monitoring").exists()
    assert [w for w in warnings if "worker-" in w or "jobs-" in w] == []
    assert [w for w in post_gen.remove_unselected({**answers, "include_k8s": "no"}, tmp_path) if "worker-" in w] == []
