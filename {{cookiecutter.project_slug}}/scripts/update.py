"""Take the template's changes into this service: `make update`, `make update-check`, `make update-finish`.

cruft re-bakes the template at the commit in .cruft.json and at the target, and merges the difference into the
service three ways (`git apply -3`), so only lines that both the service and the template changed conflict.
Around it, this script picks the target (the template's latest release tag, or REF), keeps the service's
answers (a new answer arrives as "no"), prints the CHANGELOG entries in between, replaces the locks with the
template's and re-locks them with the service's own dependencies, stages what it resolved, and names each file
left in conflict. A clean update ends with `make lint` and `make lock-check`.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent  # the service's .venv, where the dev lock installs cruft and cookiecutter
RELEASE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
SECTION = re.compile(r"^## \[([^\]]+)\]", re.MULTILINE)
LOCKS = ("runtime.txt", "build.txt", "dev.txt")
# CHANGELOG.md's line for a new answer ends with the value an updated service keeps.
KEEPS = re.compile(r"^- New answer `(\w+)`.*?an updated service keeps `([^`]+)`", re.MULTILINE)
MARKERS = re.compile(r"^(<<<<<<<|>>>>>>>) ", re.MULTILINE)


class Stop(Exception):
    """A reason to stop, printed as one line."""


def git(*args: str, cwd: Path = Path()) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Stop(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def version(name: str) -> tuple[int, ...] | None:
    match = RELEASE.match(name)
    return tuple(int(part) for part in match.groups()) if match else None


def cruft_state() -> dict[str, Any]:
    path = Path(".cruft.json")
    if not path.exists():
        raise Stop(
            "no .cruft.json: this service is not linked to its template yet; link it once with "
            "`cruft link --checkout <template commit> <template>` (README: Template updates)"
        )
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def latest_release(clone: Path) -> str | None:
    """The highest release tag (v1.2.3) of the template, if it has any."""
    tags = [tag for tag in git("tag", "--list", cwd=clone).splitlines() if version(tag)]
    return max(tags, key=lambda tag: version(tag) or ()) if tags else None


def attempt(*args: str, cwd: Path = Path()) -> str | None:
    """What ``git args`` prints, or None when it fails."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def resolve(clone: Path, ref: str) -> str:
    """The commit of ``ref``: a tag, a commit, or a branch of the template."""
    for name in (ref, f"origin/{ref}"):
        if commit := attempt("rev-parse", "--verify", "--quiet", name + "^{commit}", cwd=clone):
            return commit
    raise Stop(f"the template has no tag, branch or commit {ref}")


def release_of(clone: Path, commit: str) -> tuple[int, ...] | None:
    """The version of the newest release tag that ``commit`` contains."""
    tag = attempt("describe", "--tags", "--abbrev=0", "--match", "v[0-9]*", commit, cwd=clone)
    return version(tag) if tag else None


def changelog(clone: Path, since: str, target: str, is_tag: bool) -> str:
    """CHANGELOG.md's entries after the release ``since`` contains, up to ``target`` (Unreleased beyond a tag)."""
    path = clone / "CHANGELOG.md"
    if not path.exists():
        return ""
    text = path.read_text()
    low, high = release_of(clone, since), release_of(clone, target)
    starts = [(match.start(), match.group(1)) for match in SECTION.finditer(text)]
    entries = []
    for (start, name), (end, _) in zip(starts, [*starts[1:], (len(text), "")], strict=True):
        number = version(name)
        if number is None:
            wanted = name.lower() == "unreleased" and not is_tag
        else:
            wanted = (low is None or number > low) and (high is None or number <= high)
        if wanted:
            entries.append(text[start:end].strip())
    return "\n\n".join(entries)


def new_answers(clone: Path, answers: dict[str, Any], asked: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The answers the target template asks and this service never gave, at the value CHANGELOG.md says an
    updated service keeps (what it had before the answer existed), else "no" where that is a choice."""
    questions = json.loads((clone / "cookiecutter.json").read_text())
    log = clone / "CHANGELOG.md"
    keeps = dict(KEEPS.findall(re.sub(r"\n[ \t]+", " ", log.read_text()))) if log.exists() else {}
    chosen: dict[str, str] = {}
    notes = []
    for key, default in questions.items():
        if key.startswith("_") or key in answers or key in asked:
            continue
        choices = [str(choice) for choice in (default if isinstance(default, list) else [default])]
        value = keeps.get(key, "no" if "no" in choices else None)
        if value is None:
            notes.append(f"new answer {key}: this service takes the template's default, {choices[0]}")
            continue
        chosen[key] = value
        others = [choice for choice in choices if choice != value]
        change = json.dumps({key: others[0] if others else value})
        notes.append(
            f"new answer {key} (default {choices[0]}): this service keeps {value}; to change it: "
            f"make update ANSWERS='{change}' (cruft update --variables-to-update)"
        )
    return chosen, notes


def template_locks(clone: Path, answers: dict[str, Any], work: Path) -> Path:
    """Bake the template with this service's answers; its requirements/ folder, the locks the template ships."""
    config = work / "cookiecutterrc"  # the user's own defaults never change an answer here
    config.write_text(f"cookiecutters_dir: {work / 'cookiecutters'}\nreplay_dir: {work / 'replay'}\n")
    values = [f"{key}={value}" for key, value in answers.items() if not key.startswith("_")]
    command = [str(BIN / "cookiecutter"), "--no-input", "--config-file", str(config), "-o", str(work / "bake")]
    done = subprocess.run([*command, str(clone), *values], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Stop(f"baking the template's locks failed: {done.stderr.strip().splitlines()[-1:]}")
    (project,) = (work / "bake").iterdir()
    return project / "requirements"


def conflicts() -> list[str]:
    """Files the merge left unresolved: git's unmerged paths, and those whose hunks cruft left in a .rej file."""
    unmerged = git("diff", "--name-only", "--diff-filter=U").splitlines()
    rejected = [name.removesuffix(".rej") for name in git("ls-files", "--others", "*.rej").splitlines()]
    return sorted(set(unmerged) | set(rejected))


def make(make_command: str, *targets: str) -> None:
    if subprocess.run([make_command, "-s", *targets], check=False).returncode != 0:
        raise Stop(f"make {' '.join(targets)} failed (above); fix it, then: make update-finish")


def relock(make_command: str) -> None:
    make(make_command, "lock")
    git("add", "requirements")


def finish(make_command: str, relocked: bool) -> None:
    """Re-lock (unless done), stage the locks, then lint and check the locks."""
    left = [name for name in git("diff", "HEAD", "--name-only").splitlines() if Path(name).is_file()]
    marked = [name for name in left if MARKERS.search(Path(name).read_text(errors="ignore"))]
    if unresolved := sorted(set(conflicts()) | set(marked)):
        raise Stop(f"still in conflict: {', '.join(unresolved)}; resolve, `git add` each, then: make update-finish")
    if not relocked:
        relock(make_command)
    make(make_command, "lint", "lock-check")
    print("updated: review `git diff --cached`, then commit")


def update(ref: str | None, asked: dict[str, Any], make_command: str, check_only: bool) -> int:
    state = cruft_state()
    if attempt("rev-parse", "--is-inside-work-tree") != "true":
        raise Stop("make update merges with git: commit the service to a git repository first")
    if git("status", "--porcelain") and not check_only:
        raise Stop("make update needs a clean working tree: commit or stash your changes first (git status)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clone = work / "template"
        git("clone", "--quiet", state["template"], str(clone))
        target = ref or latest_release(clone)
        if target is None:
            print("the template has no release tag yet: taking its default branch")
            target = git("rev-parse", "HEAD", cwd=clone)
        commit = resolve(clone, target)
        git("checkout", "--quiet", commit, cwd=clone)
        is_tag = version(target) is not None
        if commit == state["commit"] and not asked:
            print(f"up to date with the template at {target}")
            return 0
        if check_only:
            print(f"behind: the template is at {target}; make update takes it")
            return 1
        if entries := changelog(clone, state["commit"], commit, is_tag):
            print(f"What changed since this service's template commit (CHANGELOG.md):\n\n{entries}\n")
        chosen, notes = new_answers(clone, state["context"]["cookiecutter"], asked)
        for note in notes:
            print(note)
        variables = {**chosen, **asked}
        command = [str(BIN / "cruft"), "update", "-y", "--template-path", str(clone), "--checkout", commit]
        if variables:
            command += ["--variables-to-update", json.dumps(variables)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not Path(".cruft.json").read_text().count(commit):
            raise Stop(f"cruft update failed: {(done.stdout + done.stderr).strip()}")
        updated = cruft_state()
        updated["checkout"] = target if is_tag or ref else None
        Path(".cruft.json").write_text(json.dumps(updated, ensure_ascii=False, indent=2) + "\n")

        # The template's locks, whole: a text merge of two locks is no lock.
        locks = template_locks(clone, updated["context"]["cookiecutter"], work)
        for name in LOCKS:
            shutil.copyfile(locks / name, Path("requirements") / name)
            Path(f"requirements/{name}.rej").unlink(missing_ok=True)
    git("add", ".cruft.json", "requirements")
    left = [name for name in conflicts() if not name.startswith("requirements/")]
    relocked = "pyproject.toml" not in left
    if relocked:
        relock(make_command)
    print(f"the template at {target}: {git('diff', '--cached', '--shortstat') or 'no file changed'}")
    if left:
        print("conflicts: the service and the template changed the same lines in")
        for name in left:
            print(f"  {name}")
        print("next: resolve the <<<<<<< markers in each file above, `git add` it, then: make update-finish")
        return 1
    finish(make_command, relocked=True)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ref", help="a tag, branch or commit of the template instead of its latest release")
    parser.add_argument("--answers", default="{}", help='answers to change, as JSON: \'{"include_x": "yes"}\'')
    parser.add_argument("--make", default="make", help="the make command that runs the service's targets")
    parser.add_argument("--check", action="store_true", help="exit 1 when the template has a newer target")
    parser.add_argument("--finish", action="store_true", help="after resolving conflicts: re-lock, lint, check")
    args = parser.parse_args()
    try:
        asked = json.loads(args.answers)
        if not isinstance(asked, dict):
            raise Stop(f"ANSWERS must be a JSON object, not {args.answers}")
        if args.finish:
            finish(args.make, relocked=False)
            return
        sys.exit(update(args.ref, asked, args.make, args.check))
    except json.JSONDecodeError as exc:
        sys.exit(f"ANSWERS is not JSON ({exc}): {args.answers}")
    except Stop as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
