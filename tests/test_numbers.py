"""No number typed by hand. Every number of README.md and docs/*.md is either inside a
generated block (`make readme`; tests/test_results.py keeps each equal to what
tools/readme_results.py makes of metrics/ and reports/), or inside a text of CHECKED, which
this test recomputes from its source at the precision it prints, or is no result, by rule:

- an integer (no decimal point): a count of images, epochs or seeds, a size, a year, a section;
- a version or an address (two dots or more: 5.20.2, 127.0.0.1), or a Python version (3.11 to 3.14);
- a machine's measurement: a number, or a range of them (a–b, a to b), followed by a unit of
  time, size or speed (s, ms, µs, min, h, MB, GB, ×, GFLOP/s, images/s): what `make bench`
  and the stage lines print on the machine at hand, which no report keeps;
- a param: a value of params.yaml, or of the params a study's runs set (tools/course.py,
  tools/exercises.py);
- a constant of the rule or of the code: CONSTANTS, each with its reason;
- anything in code (blocks and spans: commands and what they print), a link's target, a comment.

A stale number fails here (its CHECKED text is no longer on the page) or in test_results (its
generated block is no longer what `make readme` makes).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

import pytest
import yaml
from conftest import REPO

from tools import noise
from tools.experiments import flat
from tools.readme_results import BEGIN, END

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
SPAN = re.compile(r"`[^`\n]+`")
LINK_TARGET = re.compile(r"\]\([^)\s]*\)")
GENERATED = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END) +
                       r"|<!-- generated: (\S+) .*?-->.*?<!-- end of generated \1 -->", re.DOTALL)
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
NUMBER = re.compile(r"(?<![\w.])[−+-]?\d+(?:,\d{3})*(?:\.\d+)*(?![\w])")
UNIT = r"(?:s|ms|µs|min|h|MB|GB|MiB|GiB|kB|KB|×|x|GFLOP/s|MFLOP|images/s)(?![\w-])"
MEASURED = re.compile(r"\s*(?:(?:–|-|to|and|or|,)\s*\d+(?:\.\d+)?\s*)*" + UNIT)
PYTHONS = {"3.11", "3.12", "3.13", "3.14"}
# Numbers of the code or of the rule, not results: value -> why.
CONSTANTS = {0.5: "an AUROC of chance", noise.MARGIN_SHARE: "the rule's margin for a share (tools/noise.py)",
             0.9: "SGD's momentum (stages/core/training.py)", 0.1: "the chance accuracy of 10 classes"}


def _json(path: str) -> Callable[[Path], dict]:
    return lambda root: json.loads((root / path).read_text())


def _md_row(path: str, first: str) -> Callable[[Path], dict]:
    """The row of a table in ``path`` whose first cell is ``first``, by its table's column headers."""
    def read(root: Path) -> dict:
        for table in re.findall(r"(?:^\|.*\n)+", (root / path).read_text(), re.MULTILINE):
            cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()]
            row = next((r for r in cells[2:] if r[0] == first), None)
            if row:
                return dict(zip(cells[0], row))
        raise KeyError(f"{path} has no table row {first!r}")
    return read


def _seeds(path: str, key: str) -> Callable[[Path], dict]:
    return lambda root: json.loads((root / path).read_text())["metrics"][key]


LIVE = _json("plots/train_classifier/live/metrics.json")
SWEEP = _json("reports/sweep.json")
COURSE, EXERCISES = "reports/course.md", "reports/exercises.md"
course = {name: _md_row(COURSE, name) for name in ("backbone", "keras_practice", "guide12", "keras_fashion",
                                                   "keras_fashion_upsample", "mnist_2d", "mnist_2d-lr0.001")}
beta = {b: _md_row(EXERCISES, b) for b in ("0.25", "1", "4")}
mnist8 = {r: _md_row(EXERCISES, r) for r in ("pixels (784)", "AE (8)", "VAE (8)", "PCA (8)")}
first = lambda cell: cell.split(" ")[0]  # noqa: E731  "0.02759 (+0.0008, no floor)" -> "0.02759"
BEST = re.compile(r"minus the same classifier on pixels: (-?\d+\.\d+)")
size = lambda rep, d: next(r for r in rep["sizes"] if r["latent_dim"] == d)  # noqa: E731

# (page, its source, the text as printed from that source). Each text must stand on its page.
CHECKED: list[tuple[str, str, Callable[[Path], str]]] = [
    ("docs/vae.md", "β = D/500 for D = 28×28 and 32×32 pixels",
     lambda root: f"{28 * 28 / 500:.2f} for 28×28, {32 * 32 / 500:.2f} for 32×32"),
    ("docs/results.md", "plots/train_classifier/live/metrics.json",
     lambda root: f"about {LIVE(root)['train_eval_loss']:.2f} nats by epoch {LIVE(root)['step']} against val's "
                  f"{LIVE(root)['val_loss']:.3f}"),
    ("docs/results.md", "plots/train_classifier/live/metrics.json",
     lambda root: f"({LIVE(root)['train_loss']:.2f}, dropout on)"),
    ("docs/determinism.md", "reports/sweep.json",
     lambda root: f"{size(SWEEP(root), 2)['pca_mse']:.6f} at d = 2 and {size(SWEEP(root), 32)['pca_mse']:.7f} at d = 32"),
    ("docs/course.md", "reports/seeds*.json",
     lambda root: f"sd of {_seeds('reports/seeds.json', 'ae.test_mse')(root)['sd']:.5f} over 5 seeds on Fashion-MNIST "
                  f"and {_seeds('reports/seeds_mnist.json', 'ae.test_mse')(root)['sd']:.5f} over 3 seeds on MNIST"),
    ("docs/course.md", COURSE,
     lambda root: f"MNIST MSE is {course['keras_practice'](root)['AE MSE']}"),
    ("docs/course.md", COURSE,
     lambda root: f"test MSE {course['keras_practice'](root)['PCA MSE (d)'].split(' ')[0].replace('e-07', '·10⁻⁷')}"),
    ("docs/course.md", COURSE,
     lambda root: f"gets {course['keras_practice'](root)['AE logreg']} against {course['keras_practice'](root)['pixels logreg']} "
                  f"on pixels, the MLP {course['keras_practice'](root)['AE MLP']} against "
                  f"{course['keras_practice'](root)['pixels MLP']}"),
    ("docs/course.md", COURSE,
     lambda root: f"`guide12` reaches {course['guide12'](root)['AE MSE']}; PCA at 128 components reaches "
                  f"{first(course['guide12'](root)['PCA MSE (d)'])}"),
    ("docs/course.md", COURSE,
     lambda root: f"MLP {course['guide12'](root)['AE MLP']} against {course['guide12'](root)['pixels MLP']}"),
    ("docs/course.md", COURSE,
     lambda root: f"{course['backbone'](root)['AE MSE']} against the course's Keras models' "
                  f"{course['keras_fashion'](root)['AE MSE']} (`keras_fashion`) and "
                  f"{course['keras_fashion_upsample'](root)['AE MSE']} (`_upsample`)"),
    ("docs/course.md", COURSE,
     lambda root: f"(MLP {course['backbone'](root)['AE MLP']} against {course['keras_fashion'](root)['AE MLP']} and "
                  f"{course['keras_fashion_upsample'](root)['AE MLP']})"),
    ("docs/course.md", COURSE,
     lambda root: f"(test MSE {course['mnist_2d'](root)['AE MSE']}, MLP probe {course['mnist_2d'](root)['AE MLP']}; "
                  "chance is 0.10)"),
    ("docs/course.md", COURSE,
     lambda root: f"(`mnist_2d-lr0.001`: {course['mnist_2d-lr0.001'](root)['AE MSE']}, below PCA's "
                  f"{first(course['mnist_2d-lr0.001'](root)['PCA MSE (d)'])}; MLP probe "
                  f"{course['mnist_2d-lr0.001'](root)['AE MLP']})"),
    ("docs/course.md", EXERCISES,
     lambda root: f"(test MSE {first(beta['4'](root)['MSE (decoding mu)'])} against "
                  f"{beta['1'](root)['MSE (decoding mu)']})"),
    ("docs/course.md", EXERCISES,
     lambda root: f"(KL {float(first(beta['4'](root)['KL (nats)'])):.2f} against {float(beta['1'](root)['KL (nats)']):.2f} "
                  f"nats); β = 0.25 spends more KL ({float(first(beta['0.25'](root)['KL (nats)'])):.2f} nats) "
                  f"for about the same MSE ({first(beta['0.25'](root)['MSE (decoding mu)'])})"),
    ("docs/course.md", EXERCISES,
     lambda root: f"({beta['1'](root)['negative ELBO (nats)']} against {first(beta['0.25'](root)['negative ELBO (nats)'])} "
                  f"and {first(beta['4'](root)['negative ELBO (nats)'])} nats); the IWAE bound too "
                  f"({beta['1'](root)['IWAE bound (nats)']} against {first(beta['0.25'](root)['IWAE bound (nats)'])} "
                  f"and {first(beta['4'](root)['IWAE bound (nats)'])})"),
    ("docs/course.md", EXERCISES,
     lambda root: ", ".join(f"{r} " + " / ".join(mnist8[r](root)[c] for c in ("logistic regression", "MLP"))
                            for r in mnist8)),
    ("docs/course.md", EXERCISES, lambda root: f"{-float(BEST.search((root / EXERCISES).read_text()).group(1)):.4f} below "
                                              "the pixel MLP"),
    ("docs/course.md", "reports/seeds_mnist.json",
     lambda root: "{:.2f} below, interval [{:.2f}, {:.2f}]".format(*(-v for v in (
         lambda s: [s["mean"], s["ci95"][1], s["ci95"][0]])(
         _seeds("reports/seeds_mnist.json", "downstream.best_latent_minus_pixels")(root))))),
]


TIMED = re.compile(r"^\|[^\n]*seconds[^\n]*\|\n(?:\|.*\n?)*", re.MULTILINE)  # a table of seconds, by its header


def prose(text: str) -> str:
    """``text`` with generated blocks, code, comments, link targets and tables of seconds
    blanked, positions kept."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group())  # noqa: E731
    for pattern in (GENERATED, COMMENT, FENCE, SPAN, LINK_TARGET, TIMED):
        text = pattern.sub(blank, text)
    return text


def found(want: str, text: str) -> list[tuple[int, int]]:
    """Where ``want`` stands in ``text``, a line break or spaces matching any run of white space."""
    pattern = r"\s+".join(re.escape(word) for word in want.split())
    return [(m.start(), m.end()) for m in re.finditer(pattern, text)]


def params_values(root: Path) -> set[float]:
    values = set()

    def add(v):
        if isinstance(v, list):
            for x in v:
                add(x)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            values.add(float(v))

    for v in flat(yaml.safe_load((root / "params.yaml").read_text())).values():
        add(v)
    from tools import course, exercises

    for study in (course.STUDY, exercises.STUDY):
        for run in study.runs.values():
            for v in run.values():
                add(v)
    return values


def no_result(token: str, after: str, params: set[float]) -> bool:
    """Whether ``token`` (followed by ``after``) is no result, by the rule of this module's docstring."""
    bare = token.replace("−", "-").lstrip("+-").replace(",", "")
    if "." not in bare or bare.count(".") > 1 or bare in PYTHONS or MEASURED.match(after):
        return True
    value = float(bare)
    return value in params or value in CONSTANTS


def unchecked(page: Path, root: Path = REPO) -> list[str]:
    """The numbers of ``page`` that are neither generated, checked, nor free by the rule."""
    text = prose(page.read_text())
    rel = page.relative_to(root).as_posix()
    raw = GENERATED.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), page.read_text())  # same positions as text
    covered = []
    for where, _, printed in CHECKED:
        if where == rel:
            covered += found(printed(root), raw)
    params = params_values(root)
    out = []
    for m in NUMBER.finditer(text):
        if any(a <= m.start() < b for a, b in covered) or no_result(m.group(), text[m.end():m.end() + 40], params):
            continue
        line = text.count("\n", 0, m.start()) + 1
        out.append(f"{rel}:{line}: {m.group()} in '{' '.join(text[max(0, m.start() - 30):m.end() + 20].split())}'")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_number_on_the_page_is_generated_checked_or_no_result(page):
    found = unchecked(page)
    assert not found, (f"numbers typed by hand (put each in a generated block of tools/readme_results.py, or add "
                       f"it to CHECKED of tests/test_numbers.py with its source): {found}")


@pytest.mark.parametrize("where, source, printed", CHECKED, ids=[f"{p}#{i}" for i, (p, _, _) in enumerate(CHECKED)])
def test_each_checked_number_is_its_source_at_its_printed_precision(where, source, printed):
    want = printed(REPO)
    assert found(want, (REPO / where).read_text()), f"{where}: stale, its source {source} now says: '{want}'"


def test_the_rule_tells_results_from_what_is_not():
    params = {0.008, 0.25}
    assert not no_result("0.9599", "", params) and not no_result("−0.177", " ± 0.018", params)
    assert no_result("784", "", params) and no_result("3.12", "", params) and no_result("5.20.2", "", params)
    assert no_result("8.4", " s against 75 s", params) and no_result("60", "–66 µs a decode", params)
    assert no_result("0.008", " (one-cycle peak)", params) and no_result("0.5", " is chance", params)
    assert not no_result("0.56", " s-shaped", params)  # a word after the number is no unit
    text = f"a {BEGIN}\n0.123\n{END} `0.456` <!-- 0.789 --> [x](a/0.1.md) 0.321\n"
    assert [m.group() for m in NUMBER.finditer(prose(text))] == ["0.321"]
