"""Delete the parts of the project whose option was answered "no", then print the next steps.

Each optional part is whole files and folders, so the template needs no Jinja to decide what exists: this
hook removes what was not chosen, and a new option is one more row in ``REMOVALS``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

# (answer, value) -> paths, relative to the project folder, that exist only when the answer is not this value;
# "{answer}" in a path stands for that answer.
PACKAGE = "src/{package_name}"
REMOVALS: dict[tuple[str, str], list[str]] = {
    ("include_k8s", "no"): ["k8s"],
    ("include_monitoring", "no"): ["monitoring"],
    # Before include_tracing's: the tracing test that needs Redis goes with Redis, then the rest with tracing.
    ("include_redis", "no"): [
        f"{PACKAGE}/features/redis_cache",
        f"{PACKAGE}/features/redis_traces.py",
        "tests/redis_cache",
        "tests/tracing/test_redis.py",
    ],
    ("include_example_api", "no"): [
        f"{PACKAGE}/features/items.py",
        f"{PACKAGE}/features/item_jobs.py",
        f"{PACKAGE}/items",
        f"{PACKAGE}/migrations/versions/0001_create_items.py",
        f"{PACKAGE}/migrations/versions/0002_item_processed_at.py",
        f"{PACKAGE}/migrations/versions/0101_merge_items_and_jobs.py",
        "tests/items",
        "tests/jobs/test_items.py",
    ],
    # After include_example_api's: the items' job goes with either.
    ("include_jobs", "no"): [
        f"{PACKAGE}/features/jobs",
        "k8s/base/worker-deployment.yaml",
        "k8s/base/worker-pdb.yaml",
        "k8s/base/worker-networkpolicy.yaml",
        "k8s/base/worker-scaledobject.yaml",
        "monitoring/prometheus/worker-podmonitor.yaml",
        "monitoring/grafana/jobs-dashboard.json",
        f"{PACKAGE}/features/item_jobs.py",
        f"{PACKAGE}/migrations/versions/0100_create_job_queue.py",
        f"{PACKAGE}/migrations/versions/0101_merge_items_and_jobs.py",
        "tests/jobs",
    ],
    ("include_error_reports", "no"): [f"{PACKAGE}/features/error_reports.py", "tests/error_reports"],
    ("include_tracing", "no"): [f"{PACKAGE}/features/tracing", f"{PACKAGE}/features/redis_traces.py", "tests/tracing"],
    ("ci", "none"): [".github"],
}


def remove_unselected(answers: Mapping[str, str], project: Path) -> list[str]:
    """Remove the paths of every option not chosen; return one warning per path that was not there.

    A path that belongs to two options (a part of both) goes with the first of them, and so does a path inside a
    folder an earlier option removed (a jobs manifest under ``k8s``). A missing path is not an
    error for the user, whose project is fine, but it means ``REMOVALS`` and the template have drifted apart, so
    it is reported rather than ignored.
    """
    warnings = []
    removed: set[str] = set()
    for (key, value), paths in REMOVALS.items():
        if answers.get(key) != value:
            continue
        for name in (path.format_map(answers) for path in paths):
            target = project / name
            if name in removed or removed.intersection(str(parent) for parent in PurePosixPath(name).parents):
                continue
            removed.add(name)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            else:
                warnings.append(f"{key}={value}: {name} is not in the project; REMOVALS and the template disagree")
    return warnings


def next_steps(project: Path, rendered: Mapping[str, object], invoked_in: str | None) -> str:
    """Return the commands to type next, in the order they are needed.

    ``cd`` takes the folder's name when the bake went into the folder cookiecutter was started in, and its full
    path otherwise (``-o``, cruft, or a caller whose folder is unknown), so that the first command is always
    right. A cruft bake (its context holds the template's commit) is committed first: the update path merges
    against that commit.
    """
    output_dir = rendered.get("_output_dir")
    same = isinstance(output_dir, str) and invoked_in and Path(output_dir).resolve() == Path(invoked_in).resolve()
    steps = [f"cd {project.name if same else project}"]
    if "_commit" in rendered:
        steps.append('git init -q && git add -A && git commit -q -m "Bake from the service template"')
    steps += ["make install", "make run", "make test"]
    return "\n".join(["", "Next steps:", *(f"  {step}" for step in steps), ""])


def rebaked(project: Path) -> bool:
    """Whether this is a tool's scratch bake in a fresh temporary folder, where cruft re-bakes for ``check``,
    ``diff`` and ``update``: nobody will ``cd`` there, so it gets no next steps."""
    scratch = project.resolve().parent
    return scratch.parent == Path(tempfile.gettempdir()).resolve() and scratch.name.startswith("tmp")


def remove_own_copy(script: str) -> None:
    """Delete this file when it is cookiecutter's rendered copy in the temporary folder (it never removes
    them); the template's own ``hooks/`` file, which tests import, is never touched."""
    path = Path(script).resolve()
    if path.parent == Path(tempfile.gettempdir()).resolve() and path.name.startswith("tmp"):
        with contextlib.suppress(OSError):
            path.unlink()


def main() -> None:
    """Trim the baked project, which is the working directory cookiecutter runs this hook in."""
    remove_own_copy(sys.argv[0])  # Python has read it already
    rendered = json.loads(r"""{{ cookiecutter | jsonify }}""")
    answers = {key: str(value) for key, value in rendered.items() if not key.startswith("_")}
    for warning in remove_unselected(answers, Path.cwd()):
        print(f"warning: {warning}", file=sys.stderr)
    if not rebaked(Path.cwd()):
        print(next_steps(Path.cwd(), rendered, os.environ.get("PWD")))


if __name__ == "__main__":
    main()
