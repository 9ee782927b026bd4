"""The docs hold together: README.md and docs/*.md link only to files and headings that
exist, name only `make` targets the Makefile has and repository paths that exist, the
README stays a front page, and no working notes are left in the docs or the code.

What counts as a repository path: a word in backticks (or in a code block) with a `/`,
whose first part is a top-level entry of the repository or whose last part has a file
extension (`stages/core/io.py`, `reports/`, `tests/test_dvc.py::test_x`). `{a,b}`
expands; `<x>` and `*` match anything. Bare file names (`curves.png`) are read in their
sentence and not checked, nor are paths outside the repository (`../shared/data`, URLs).
A path exists when git knows it (tracked, or new and not ignored); when it is a DVC
output of dvc.yaml, lies under one or holds one (data, models, figures: `dvc repro`
makes them, DVC's cache keeps them); or when it lies under what a command makes at run
time and git ignores: `build/` (`make test-pythons`, `make check-page`), `dvc_plots/`
(`dvc plots show`), `.venv/` (`make setup`), `.dvc/cache` (DVC's cache).

Anchors are GitHub's: the heading lowercased, every character but letters, digits, `_`,
`-` and spaces dropped, each space a `-`; a repeated heading gets `-1`, `-2`, ...
"""
from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO

README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
README_LINES = 200
FRONT = 120  # the answer, the figure, the two commands and the results table come first
RUNTIME = ("build/", "dvc_plots/", ".venv/", ".dvc/cache")  # made by a command, ignored by git
# Working notes have no place in the docs or the code: git log keeps the history.
NOTES = re.compile(r"\bsessions?\b|\bissues?\b|\bstop \d+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b",
                   re.IGNORECASE)
CODE = [*(REPO / "stages").rglob("*.py"), *(REPO / "tools").rglob("*.py"), *(REPO / "tools").glob("*.sh"),
        *(REPO / "benchmarks").glob("*"), REPO / "Makefile", REPO / "dvc.yaml", REPO / "params.yaml"]

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
SPAN = re.compile(r"`([^`]+)`")
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)
EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")


def prose(text: str) -> str:
    """The text without code blocks, code spans and HTML comments: where links live."""
    return SPAN.sub("", FENCE.sub("", COMMENT.sub("", text)))


def code(text: str) -> list[str]:
    """Each code block's lines and each code span, whitespace folded."""
    blocks = [line for block in FENCE.findall(text) for line in block.splitlines()[1:-1]]
    spans = [" ".join(s.split()) for s in SPAN.findall(FENCE.sub("", text))]
    return blocks + spans


def slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(page: Path, text: str, known: set[str]) -> list[str]:
    """Each relative link of ``text`` (the page at ``page``) whose file git does not know,
    or whose #anchor the markdown file it points to has no heading for."""
    broken = []
    for target in LINK.findall(prose(text)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        try:
            rel = dest.relative_to(REPO).as_posix()
        except ValueError:
            broken.append(f"{target} (outside the repository)")
            continue
        if file and rel not in known and not any(k.startswith(rel + "/") for k in known):
            broken.append(f"{target} (no such file in git)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(text if not file else dest.read_text()):
            broken.append(f"{target} (no heading #{anchor} in {rel})")
    return broken


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", (REPO / "Makefile").read_text(), re.MULTILINE))


def named_targets(text: str) -> set[str]:
    """Every target a `make ...` command in the code of ``text`` names."""
    names = set()
    for snippet in code(text):
        for match in re.finditer(r"(?<![\w./-])make\b", snippet):
            rest = re.split(r";|&&|\|\||\||#|\)", snippet[match.end():])[0]
            try:
                words = shlex.split(rest)
            except ValueError:
                words = rest.split()
            for word in words:
                if word == "make":  # a second command on the same line
                    break
                if "=" in word or word.startswith("-"):
                    continue
                if "<" not in word:
                    names.add(word)
    return names


def git_files() -> set[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, text=True, check=True)
    return set(out.stdout.splitlines())


def dvc_outs() -> set[str]:
    outs = set()
    for spec in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].values():
        for entry in spec.get("outs", []) + spec.get("metrics", []) + spec.get("plots", []):
            outs.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    return outs


def expand(path: str) -> list[str]:
    """`a/{b,c}.py` -> [`a/b.py`, `a/c.py`], placeholders `<x>` as `*`."""
    m = re.search(r"\{([^{}]*)\}", path)
    if m:
        return [p for part in m.group(1).split(",")
                for p in expand(path[: m.start()] + part.strip() + path[m.end():])]
    return [re.sub(r"<[^>]*>", "*", path)]


def named_paths(text: str, top: set[str]) -> set[str]:
    paths = set()
    for snippet in code(text):
        for word in snippet.split():
            word = word.strip("\"'()[],;:").rstrip(".").split("::")[0]
            word = word.split("=", 1)[1] if "=" in word else word
            if ("/" not in word or "://" in word or word[:1] in "/~$<-" or word.startswith("..")
                    or any(c in word for c in "\\|^")):
                continue
            if word.split("/")[0] in top or EXTENSION.search(word.rstrip("/")):
                paths.add(word)
    return paths


def exists(path: str, known: set[str], outs: set[str]) -> bool:
    if path.startswith(RUNTIME):
        return True
    for candidate in expand(path.rstrip("/")):
        prefix = candidate.split("*")[0].rstrip("/")
        found = (any(fnmatch.fnmatch(k, candidate) or fnmatch.fnmatch(k, candidate + "/*") for k in known)
                 or any(fnmatch.fnmatch(o, candidate) or o == prefix or prefix.startswith(o + "/")
                        or o.startswith(candidate + "/") for o in outs))
        if not found:
            return False
    return True


GIT = pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs the git checkout")


@GIT
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_and_anchor_resolves(page):
    broken = broken_links(page, page.read_text(), git_files())
    assert not broken, f"{page.relative_to(REPO)}: broken links {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_make_target_the_docs_name_exists(page):
    missing = named_targets(page.read_text()) - make_targets()
    assert not missing, f"{page.name} names make targets the Makefile lacks: {sorted(missing)}"


@GIT
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_path_the_docs_name_exists(page):
    known, outs = git_files(), dvc_outs()
    top = {p.split("/")[0] for p in known | outs} | {r.rstrip("/") for r in RUNTIME}
    missing = sorted(p for p in named_paths(page.read_text(), top) if not exists(p, known, outs))
    assert not missing, f"{page.name} names paths that are neither in git, DVC outputs nor made at run time: {missing}"


def test_the_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_LINES, f"README.md has {len(lines)} lines; move the detail to docs/"
    front = "\n".join(lines[:FRONT])
    from tools.readme_results import BEGIN, END

    for what, needle in [("the figure", "!["), ("make repro", "make repro"), ("make test", "make test"),
                         ("the results block", BEGIN), ("its end", END)]:
        assert needle in front, f"README.md: {what} is not within its first {FRONT} lines"


@pytest.mark.parametrize("path", [*PAGES, *CODE], ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_working_notes(path):
    """No sessions, issues, numbered stops or commit hashes: the docs and the code say what
    the project is, git log what happened to it."""
    hits = [f"{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
            if NOTES.search(line)]
    assert not hits, f"{path.relative_to(REPO)}: working notes {hits}"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_help_lists_every_phony_target_and_is_the_default():
    makefile = (REPO / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.MULTILINE).group(1).split()
    bare = subprocess.run(["make", "-s"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    listed = {line.split()[0] for line in bare.splitlines() if line.startswith("  ")}
    assert set(phony) <= listed, f"make help does not list {sorted(set(phony) - listed)}"
    assert all(len(line.split(None, 1)) == 2 for line in bare.splitlines() if line.startswith("  ")), \
        "a target in make help has no description"


def test_the_checks_catch_what_they_are_for():
    """A broken link, a missing anchor, an unknown target, a missing path and a working
    note are each caught; what exists passes."""
    page = REPO / "docs" / "probe.md"  # read from the string below, never written
    text = ("# A heading\n\n## A heading\n\n[x](missing.md) [y](#a-heading-1) [z](#no-such) "
            "[w](../README.md#run-it) [v](https://example.org/#x) `[not](a-link.md)`\n\n"
            "`make repro` `make PYTHON=python3.12 no-such-target`\n\n"
            "`stages/core/no_such.py` `data/raw/mnist/x.gz` `build/plots_page.png`\n")
    assert broken_links(page, text, {"README.md"}) == ["missing.md (no such file in git)",
                                                        "#no-such (no heading #no-such in docs/probe.md)"]
    assert slug("Noise floor: how far the seeds alone move each number") == \
        "noise-floor-how-far-the-seeds-alone-move-each-number"
    assert slug("VAE loss and β") == "vae-loss-and-β" and slug("Offline use: `DATA_MIRROR`") == "offline-use-data_mirror"
    assert named_targets(text) - make_targets() == {"no-such-target"}
    top = {"stages", "data", "build"}
    known, outs = {"README.md", "stages/core/io.py"}, {"data/raw"}
    assert {p for p in named_paths(text, top) if not exists(p, known, outs)} == {"stages/core/no_such.py"}
    assert exists("stages/core/", known, outs) and exists("stages/{core,x}/io.py", known, outs) is False
    assert NOTES.search("as this session found") and NOTES.search("at 55f4ba4") and NOTES.search("see issue 3")
    assert not NOTES.search("deadbeef 1234567 and a sha256 " + "ab12" * 16)
