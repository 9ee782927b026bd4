"""Probes: how much of the class a representation keeps, by the classifiers on top of it.

Every representation, pixels included, gets the same ones: a logistic regression (C
chosen on val), the MLP (trained by the training loop) and k-nearest neighbours;
:func:`probe` gives representations all three (downstream, tools/bottleneck_control.py).
"""
from __future__ import annotations

import copy
import itertools
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from . import builders
from .config import ClassifierConfig, LogregConfig
from .data import SPLITS
from .device import batched
from .params import from_section
from .training import train_and_test

KNN = (1, 5)  # fixed, as Sainburg et al. (2021) report 1-NN and 5-NN on these models' codes


def standardize(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scale every split with the train split's mean and std only."""
    scaler = StandardScaler().fit(features["train"])
    return {split: scaler.transform(x).astype(np.float32) for split, x in features.items()}


@dataclass
class LogregResult:
    C: float
    val_acc: float
    test_acc: float
    test_pred: np.ndarray
    n_iter: dict[float, int]  # iterations lbfgs took, for every C of the grid (the logs print them)
    converged: bool  # every C of the grid stopped on tol, not on max_iter

    def record(self) -> dict:
        """What the reports keep: not the iteration counts, which the BLAS kernel moves by a
        few while the predictions stay."""
        return {"C": self.C, "val_acc": self.val_acc, "test_acc": self.test_acc, "converged": self.converged}


def logistic_regression(x: dict[str, np.ndarray], y: dict[str, np.ndarray], cfg: LogregConfig,
                        seed: int = 0) -> LogregResult:
    """Multinomial logistic regression (lbfgs) for each C of the grid, C chosen on val;
    test is predicted once, by the chosen model. The grid is walked from the strongest
    penalty up, each fit starting at the last one's optimum (the optimum is unique):
    0.44x the time of fitting each from scratch, on the Fashion-MNIST pixels on the
    project's 2-core CPU machine (docs/pipeline.md). A fit that stops at
    ``max_iter`` warns (sklearn's ConvergenceWarning) and is recorded as not converged."""
    # float64: on float32 features lbfgs works in float32, and the BLAS kernel then moves
    # its predictions (measured: docs/determinism.md).
    x = {split: np.asarray(v, dtype=np.float64) for split, v in x.items()}
    model = LogisticRegression(max_iter=cfg.max_iter, tol=cfg.tol, random_state=seed, warm_start=True)
    best, n_iter = None, {}
    for C in sorted(cfg.C):
        model.set_params(C=C).fit(x["train"], y["train"])
        n_iter[C] = int(model.n_iter_.max())
        val_acc = float((model.predict(x["val"]) == y["val"]).mean())
        if best is None or val_acc > best[1]:
            best = (C, val_acc, copy.deepcopy(model))
    C, val_acc, chosen = best
    pred = chosen.predict(x["test"])
    return LogregResult(C, val_acc, float((pred == y["test"]).mean()), pred, n_iter,
                        all(n < cfg.max_iter for n in n_iter.values()))


KD_TREE_MAX_DIM = 32  # the latent-size sweep's largest


def knn_accuracy(x: dict[str, np.ndarray], y: dict[str, np.ndarray],
                 ks: tuple[int, ...]) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """k-nearest-neighbour accuracy on val and test, and the test predictions, the train split
    as the neighbours, for each fixed k: Euclidean distance in the space the codes live in (not standardized), as
    published tables of these models report it. Up to :data:`KD_TREE_MAX_DIM` dims a k-d
    tree computes exact distances itself, so no BLAS kernel moves a neighbour; beyond, a
    tree prunes little and scans at a loop's speed (10,000 codes, 1,000 queries, 784 dims:
    18 s against brute force's 0.2 s here; the full splits would take most of an hour),
    so distances go through BLAS, whose kernel may move a near-tie."""
    x = {split: np.asarray(v, dtype=np.float64) for split, v in x.items()}
    algorithm = "kd_tree" if x["train"].shape[1] <= KD_TREE_MAX_DIM else "brute"
    out, test_pred = {}, {}
    for k in ks:
        model = KNeighborsClassifier(n_neighbors=k, algorithm=algorithm).fit(x["train"], y["train"])
        pred = {s: model.predict(x[s]) for s in ("val", "test")}
        out[f"k={k}"] = {f"{s}_acc": float((pred[s] == y[s]).mean()) for s in pred}
        test_pred[f"k={k}"] = pred["test"]
    return out, test_pred


def mlp_probe(x: dict[str, np.ndarray], y: dict[str, np.ndarray], params: dict, n_classes: int, label: str,
              device: torch.device) -> tuple[dict, np.ndarray]:
    """The pixel classifier's MLP, same params (``train_classifier``), on these features:
    train_and_test's metrics and the test predictions."""
    data = {s: (torch.from_numpy(x[s]), torch.from_numpy(y[s])) for s in SPLITS}
    model, cfg = builders.classifier(params, x["train"].shape[1], n_classes, None)
    model = model.to(device)
    # No live log: short fits, three to a stage (and run by tools outside the DAG too),
    # whose curves no plot draws; the stage's metrics say how each ended.
    _, metrics = train_and_test(model, data, cfg, "train_classifier", label)
    model.eval()
    return metrics, batched(lambda xb: model(xb).argmax(1), data["test"][0], device).numpy()


@dataclass
class Probed:
    """One representation's probes: the val-selected logreg, the MLP and k-NN."""

    dim: int
    logreg: LogregResult
    mlp: dict  # train_and_test's metrics
    mlp_pred: np.ndarray  # (N_test,)
    knn: dict  # {"k=1": {val_acc, test_acc}, ...}, on the codes as they are
    knn_pred: dict[str, np.ndarray]  # {"k=1": (N_test,), ...}

    def record(self) -> dict:
        return {"dim": self.dim, "mlp": self.mlp, "logreg": self.logreg.record(), "knn": self.knn}

    def test_pred(self, classifier: str) -> np.ndarray:
        """The test predictions of ``classifier``: "logreg", "mlp" or a k-NN's "k=<k>"."""
        return {"mlp": self.mlp_pred, "logreg": self.logreg.test_pred, **self.knn_pred}[classifier]

    def test_preds(self) -> dict[str, np.ndarray]:
        return {c: self.test_pred(c) for c in ("logreg", "mlp", *self.knn_pred)}

    def summary(self) -> str:
        neighbours = ", ".join(f"{key.removeprefix('k=')}-NN {r['test_acc']:.4f}" for key, r in self.knn.items())
        return (f"logreg {self.logreg.test_acc:.4f} (C={self.logreg.C:g}, iterations {self.logreg.n_iter}), "
                f"mlp {self.mlp['test_acc']:.4f}, {neighbours}")


def probe(codes: dict[str, dict[str, np.ndarray]], labels: dict[str, np.ndarray], params: dict, n_classes: int,
          label: str, device: torch.device) -> dict[str, Probed]:
    """Every probe on each representation's codes (``{name: {split: (N, d)}}``): k-NN on the
    codes as they are, the logreg and the MLP on codes standardized with train statistics,
    with the ``logreg`` and ``train_classifier`` params and the training ``seed``.

    The fits are independent, so on the CPU they run in worker processes, as many as the
    cores (joblib; each worker then has cores / workers threads): on 2 cores the three
    codes of a latent experiment are probed in 15.4 s instead of 26.6 s (docs/results.md).
    The numbers are the same for the same core count, not across core counts (as torch's
    threads already make them); on a GPU the fits run one after another, here."""
    seed = from_section(ClassifierConfig, params, "train_classifier").seed
    cfg = from_section(LogregConfig, params, "logreg")
    x = {name: standardize(c) for name, c in codes.items()}
    fits = [delayed(mlp_probe)(x[name], labels, params, n_classes, f"{label} {name}", device) for name in codes]
    fits += [delayed(logistic_regression)(x[name], labels, cfg, seed) for name in codes]
    fits += [delayed(knn_accuracy)(codes[name], labels, KNN) for name in codes]
    jobs = 1 if device.type == "cuda" else min(len(fits), os.cpu_count() or 1)
    # max_nbytes=None: every worker gets its own writable copy (torch wants one), no memmap
    done = iter(Parallel(n_jobs=jobs, max_nbytes=None)(fits))
    mlps, logregs, knns = ([next(done) for _ in codes] for _ in range(3))
    return {name: Probed(x[name]["train"].shape[1], logreg, mlp, mlp_pred, *knn)
            for name, (mlp, mlp_pred), logreg, knn in zip(codes, mlps, logregs, knns)}


def paired_accuracy(actual: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """How far two classifiers' test accuracies differ when only the test images are drawn
    again: per image d = correct_a - correct_b (in -1, 0, 1); the difference is its mean,
    ``se`` its standard error over the n images (sd(d) / sqrt(n)), ``ci95`` the normal
    interval, and ``mcnemar_p`` McNemar's exact test of "as often right" on the images only
    one of the two gets right (``a_only`` against ``b_only``, binomial at 1/2)."""
    d = (np.asarray(pred_a) == actual).astype(np.float64) - (np.asarray(pred_b) == actual)
    n, mean = len(d), float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    a_only, b_only = int((d > 0).sum()), int((d < 0).sum())
    p = float(stats.binomtest(a_only, a_only + b_only, 0.5).pvalue) if a_only + b_only else 1.0
    z = float(stats.norm.ppf(0.975))
    return {"difference": mean, "se": se, "ci95": [mean - z * se, mean + z * se],
            "mcnemar_p": p, "a_only": a_only, "b_only": b_only}


def test_image_differences(actual: np.ndarray, preds: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """``paired_accuracy`` of every two representations of ``preds`` ({representation:
    {classifier: test predictions}}, in order) for each classifier both have:
    {"<a>-<b>": {classifier: ...}}."""
    out = {}
    for a, b in itertools.combinations(preds, 2):
        shared = [c for c in preds[a] if c in preds[b]]
        if shared:
            out[f"{a}-{b}"] = {c: paired_accuracy(actual, preds[a][c], preds[b][c]) for c in shared}
    return out


def confusion_counts(actual: np.ndarray, predicted: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """One row per (actual, predicted) pair of classes with its count, zeros included:
    100 rows for `dvc plots` (its confusion_counts template sums them) instead of one
    row per test image."""
    n = len(classes)
    counts = np.bincount(np.asarray(actual) * n + np.asarray(predicted), minlength=n * n)
    return pd.DataFrame({"actual": np.repeat(classes, n), "predicted": np.tile(classes, n), "count": counts})
