"""stages/core/representations.py and probes.py: reconstruction errors, representations (PCA, AE/VAE) and
the downstream helpers, against direct numpy/sklearn computations on tiny arrays."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import conv_cfg, synthetic_images, vae_cfg
from sklearn.linear_model import LogisticRegression

from stages.core.config import LogregConfig
from stages.core.inputs import normalize
from stages.core.models import VAE, AutoEncoder
from stages.core.ood_scores import auroc, png_bits, roc
from stages.core.probes import logistic_regression, standardize
from stages.core.representations import (ModelRepresentation, PCARepresentation, Representation, attribute_vector,
                                         interpolate, latent_grid, mse_summary, per_image_mse, project_2d,
                                         unit_pixels, walk)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def images() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Synthetic uint8 images (N, 28, 28) and labels: a train and a test set."""
    return {"train": synthetic_images(300, 1), "test": synthetic_images(100, 2)}


def test_unit_pixels():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = unit_pixels(x)
    assert out.dtype == np.float32 and out.shape == (1, 4)
    np.testing.assert_allclose(out, [[0, 1, 0.2, 0.4]], rtol=1e-6)


def test_per_image_mse_matches_numpy():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28)).astype(np.uint8)
    recon = rng.random((5, 28, 28)).astype(np.float32)
    expected = ((images / 255.0 - recon) ** 2).mean(axis=(1, 2))
    mse = per_image_mse(images, recon)
    assert mse.shape == (5,)
    np.testing.assert_allclose(mse, expected, rtol=1e-5)
    np.testing.assert_allclose(per_image_mse(images, images / 255.0), 0, atol=1e-12)
    # (N, 1, 28, 28) reconstructions are accepted as well
    np.testing.assert_allclose(per_image_mse(images, recon[:, None]), expected, rtol=1e-5)


# -------------------------------------------------------------------------------- PCA
@pytest.mark.parametrize("d", [1, 2, 8])
def test_pca_shapes_range_and_train_only_fit(d, images):
    train, test = images["train"][0], images["test"][0]
    rep = PCARepresentation.fit(train, d)
    assert (rep.name, rep.dim) == ("pca", d)
    z = rep.encode(test)
    assert z.shape == (len(test), d) and z.dtype == np.float32
    x = rep.decode(z)
    assert x.shape == (len(test), 28, 28)
    assert x.min() >= 0 and x.max() <= 1
    np.testing.assert_allclose(rep.mean, unit_pixels(train).mean(axis=0), atol=1e-6)
    assert not np.allclose(rep.mean, unit_pixels(np.concatenate([train, test])).mean(axis=0), atol=1e-6)


def test_pca_error_decreases_with_more_components(images):
    train, test = images["train"][0], images["test"][0]
    errors = []
    for d in (1, 2, 8):
        rep = PCARepresentation.fit(train, d)
        errors.append(per_image_mse(test, rep.decode(rep.encode(test))).mean())
    assert errors[0] > errors[1] > errors[2], errors


# ------------------------------------------------------------------- model representations
@pytest.mark.parametrize("normalize_, pad", [("unit", 0), ("symmetric", 2)])
def test_model_representation_round_trip_shapes(normalize_, pad, images):
    torch.manual_seed(0)
    model = AutoEncoder(conv_cfg(latent_dim=3, widths=(4, 8), hidden=16, normalize=normalize_, pad=pad))
    rep = ModelRepresentation("ae", model, CPU)
    assert rep.dim == 3 and not model.training
    test = images["test"][0][:10]
    z = rep.encode(test)
    assert z.shape == (10, 3) and z.dtype == np.float32
    with torch.no_grad():
        np.testing.assert_allclose(z, model.encode(normalize(test, model.cfg.input)).numpy(), atol=1e-6)
    x = rep.decode(z)
    assert x.shape == (10, 28, 28)  # padding removed
    assert x.min() >= 0 and x.max() <= 1  # back on the [0, 1] scale, even from tanh
    assert per_image_mse(test, x).shape == (10,)


def test_vae_representation_is_the_deterministic_mean(images):
    torch.manual_seed(0)
    model = VAE(vae_cfg(latent_dim=2, widths=(4, 8), hidden=16, loss="bce")).train()
    rep = ModelRepresentation("vae", model, CPU)
    test = images["test"][0][:8]
    z1, z2 = rep.encode(test), rep.encode(test)
    np.testing.assert_array_equal(z1, z2)
    with torch.no_grad():
        mu, _ = model.encode_dist(normalize(test, model.cfg.input))
    np.testing.assert_allclose(z1, mu.numpy(), atol=1e-6)


def test_interpolate_goes_from_one_code_to_the_other(images):
    train, test = images["train"][0], images["test"][0]
    rep = PCARepresentation.fit(train, 2)
    strip = interpolate(rep, test[0], test[1], 5)
    assert strip.shape == (5, 28, 28)
    ends = rep.decode(rep.encode(test[:2]))
    np.testing.assert_allclose(strip[[0, -1]], ends, atol=1e-5)


# ------------------------------------------------------------------------ summaries
def test_mse_summary_keys_and_values():
    rng = np.random.default_rng(0)
    mse = rng.random(40)
    labels = np.arange(40) % 3  # class 3 has no image
    classes = ["T-shirt/top", "Trouser", "Ankle boot", "Bag"]
    out = mse_summary(mse, labels, classes)
    assert set(out) == {f"mse_{k}" for k in ("mean", "median", "min", "max", "p95")} | {
        "mse_mean_t_shirt_top", "mse_mean_trouser", "mse_mean_ankle_boot"}
    assert out["mse_mean"] == pytest.approx(mse.mean())
    assert out["mse_median"] == pytest.approx(np.median(mse))
    assert out["mse_min"] == pytest.approx(mse.min())
    assert out["mse_max"] == pytest.approx(mse.max())
    assert out["mse_p95"] == pytest.approx(np.percentile(mse, 95))
    assert out["mse_mean_ankle_boot"] == pytest.approx(mse[labels == 2].mean())
    assert all(isinstance(v, float) for v in out.values())  # JSON-serializable


def test_project_2d():
    rng = np.random.default_rng(0)
    two = rng.normal(size=(30, 2)).astype(np.float32)
    points, axes = project_2d(two)
    np.testing.assert_array_equal(points, two)
    assert axes == ("z[0]", "z[1]")

    eight = rng.normal(size=(30, 8)) * np.arange(1, 9)  # variance grows with the column
    points, axes = project_2d(eight, "pca")
    assert points.shape == (30, 2) and axes == ("PC 1", "PC 2")
    top_two = np.linalg.eigvalsh(np.cov(eight.T))[::-1][:2]  # the covariance's largest eigenvalues
    np.testing.assert_allclose(points.var(axis=0, ddof=1), top_two, rtol=1e-6)

    one = rng.normal(size=(30, 1))
    points, _ = project_2d(one)
    assert points.shape == (30, 2)
    np.testing.assert_array_equal(points[:, 0], one[:, 0])
    np.testing.assert_array_equal(points[:, 1], 0)


def test_latent_grid_spans_the_1st_to_99th_percentile():
    rng = np.random.default_rng(0)
    codes = np.column_stack([rng.normal(5, 1, 500), rng.normal(-3, 10, 500)])
    n = 4
    z, z1, z2 = latent_grid(codes, n)
    assert z.shape == (n * n, 2) and z.dtype == np.float32
    np.testing.assert_allclose(z1[[0, -1]], np.percentile(codes[:, 0], [1, 99]))
    np.testing.assert_allclose(z2[[0, -1]], np.percentile(codes[:, 1], [1, 99]))
    assert (np.diff(z1) > 0).all() and (np.diff(z2) > 0).all()
    # row-major from the top row: z2 descends down the rows, z1 ascends along a row
    grid = z.reshape(n, n, 2)
    np.testing.assert_allclose(grid[0, :, 0], z1, rtol=1e-6)
    np.testing.assert_allclose(grid[:, 0, 1], z2[::-1], rtol=1e-6)


# -------------------------------------------------------------------------- downstream
def test_standardize_uses_train_statistics_only():
    rng = np.random.default_rng(0)
    features = {"train": rng.normal(5, 3, (50, 4)) * [1, 2, 3, 4],
                "val": rng.normal(-1, 1, (20, 4)), "test": rng.normal(10, 5, (30, 4))}
    out = standardize(features)
    assert all(out[s].dtype == np.float32 and out[s].shape == features[s].shape for s in features)
    np.testing.assert_allclose(out["train"].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out["train"].std(axis=0), 1, atol=1e-5)
    mean, std = features["train"].mean(axis=0), features["train"].std(axis=0)
    for s in ("val", "test"):
        np.testing.assert_allclose(out[s], (features[s] - mean) / std, rtol=1e-5, atol=1e-5)
        assert np.abs(out[s].mean(axis=0)).max() > 0.5  # not centred on its own statistics


def blobs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated classes in 4-D."""
    y = np.arange(n) % 3
    centres = np.array([[4, 0, 0, 0], [0, 4, 0, 0], [0, 0, 4, 0]], dtype=float)
    return (centres[y] + rng.normal(0, 0.5, (n, 4))).astype(np.float32), y


def test_logistic_regression_on_separable_features():
    rng = np.random.default_rng(0)
    data = {s: blobs(n, rng) for s, n in (("train", 90), ("val", 30), ("test", 60))}
    x, y = {s: d[0] for s, d in data.items()}, {s: d[1] for s, d in data.items()}
    Cs = (1e-4, 0.01, 1.0)
    result = logistic_regression(x, y, LogregConfig(C=Cs, max_iter=200, tol=1e-4))
    val_accs = {C: (LogisticRegression(C=C, max_iter=1000).fit(x["train"], y["train"]).predict(x["val"])
                    == y["val"]).mean() for C in Cs}
    assert result.C in Cs and result.converged and set(result.n_iter) == set(Cs)
    assert all(1 <= n < 200 for n in result.n_iter.values())
    assert result.val_acc == pytest.approx(max(val_accs.values()))
    assert result.test_acc >= 0.95
    assert result.test_pred.shape == y["test"].shape
    assert result.test_acc == pytest.approx((result.test_pred == y["test"]).mean())


def test_logistic_regression_chooses_C_on_val_not_on_test():
    """Val favours the smallest C (which predicts the majority class), test the largest:
    the result must follow val and report that C's test accuracy."""
    rng = np.random.default_rng(0)

    def two_classes(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = (rng.random(n) < 0.2).astype(int)  # class 1 is the minority
        x = np.column_stack([np.where(y == 1, 2.0, -2.0) + rng.normal(0, 0.3, n), rng.normal(0, 1, n)])
        return x.astype(np.float32), y

    (x_train, y_train), (x_test, y_test) = two_classes(200), two_classes(100)
    x_val = np.tile(np.float32([[2.0, 0.0]]), (10, 1))  # class 0 where class 1 lives
    y_val = np.zeros(10, dtype=int)
    result = logistic_regression({"train": x_train, "val": x_val, "test": x_test},
                                 {"train": y_train, "val": y_val, "test": y_test},
                                 LogregConfig(C=(100.0, 1.0, 1e-4), max_iter=100, tol=1e-4))
    assert result.C == 1e-4 and result.val_acc == 1.0
    np.testing.assert_array_equal(result.test_pred, 0)
    assert result.test_acc == pytest.approx((y_test == 0).mean())


def test_logistic_regression_reports_a_fit_that_hits_max_iter_and_warns():
    """No muted ConvergenceWarning: a grid cut short by max_iter says so, in the warning
    and in the record the stages write."""
    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.default_rng(0)
    data = {s: blobs(n, rng) for s, n in (("train", 90), ("val", 30), ("test", 30))}
    x, y = {s: d[0] for s, d in data.items()}, {s: d[1] for s, d in data.items()}
    with pytest.warns(ConvergenceWarning):
        result = logistic_regression(x, y, LogregConfig(C=(100.0,), max_iter=2, tol=1e-8))
    assert not result.converged and result.n_iter == {100.0: 2}
    assert "n_iter" not in result.record() and result.record()["converged"] is False


# -------------------------------------------------------------------- latent arithmetic
class Pixels(Representation):
    """The identity representation: codes are the pixels themselves."""

    name, dim = "pixels", 28 * 28

    def encode(self, images: np.ndarray) -> np.ndarray:
        return unit_pixels(images)

    def decode(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float32).reshape(len(z), 28, 28)


def test_attribute_vector_is_the_difference_of_class_means():
    codes = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 4.0], [12.0, 8.0]])
    labels = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(attribute_vector(codes, labels, 0, 1), [10.0, 6.0])
    np.testing.assert_allclose(attribute_vector(codes, labels, 1, 0), [-10.0, -6.0])


def test_walk_decodes_z_plus_alpha_v_per_image_and_alpha(images):
    x = images["test"][0][:3]
    v = np.full(28 * 28, 0.1, dtype=np.float32)
    out = walk(Pixels(), x, v, np.array([0.0, 1.0, 2.5]))
    assert out.shape == (3, 3, 28, 28)
    for i in range(3):
        for j, alpha in enumerate((0.0, 1.0, 2.5)):
            np.testing.assert_allclose(out[i, j], x[i] / 255.0 + alpha * 0.1, rtol=1e-6)


# ---------------------------------------------------------------------------------- ood
def test_auroc_and_roc_put_the_other_set_as_positive():
    inside, outside = np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6])
    assert auroc(inside, outside) == 1.0 and auroc(outside, inside) == 0.0
    assert auroc(inside, inside) == 0.5
    curve = roc(inside, outside)
    assert curve.iloc[0].tolist() == [0, 0] and curve.iloc[-1].tolist() == [1, 1]


def test_png_bits_grow_with_the_image_complexity():
    rng = np.random.default_rng(0)
    flat = np.zeros((1, 28, 28), np.uint8)
    bar = flat.copy()
    bar[0, 10:14, 4:24] = 255
    noise = rng.integers(0, 256, size=(1, 28, 28), dtype=np.uint8)
    bits = png_bits(np.concatenate([flat, bar, noise]))
    assert bits[0] < bits[1] < bits[2]
    assert bits[2] > 28 * 28 * 8 * 0.9  # noise does not compress


def test_knn_accuracy_against_a_hand_made_case():
    from stages.core.probes import knn_accuracy

    x = {"train": np.array([[0.0], [1.0], [2.0], [10.0], [11.0]]), "val": np.array([[1.4], [10.6]]),
         "test": np.array([[2.6], [9.0], [5.0]])}
    y = {"train": np.array([0, 0, 1, 2, 2]), "val": np.array([0, 2]), "test": np.array([1, 2, 0])}
    out, pred = knn_accuracy(x, y, (1, 3))
    np.testing.assert_array_equal(pred["k=1"], [1, 2, 1])
    # 1-NN: val 1.4 -> 1.0 (0), 10.6 -> 11.0 (2); test 2.6 -> 2.0 (1), 9.0 -> 10.0 (2), 5.0 -> 2.0 (1, wrong)
    assert out["k=1"] == {"val_acc": 1.0, "test_acc": pytest.approx(2 / 3)}
    # 3-NN: test 2.6 -> {2.0, 1.0, 0.0}: 0 wins; 9.0 -> {10, 11, 2}: 2; 5.0 -> {2, 1, 0}: 0 (right)
    assert out["k=3"]["test_acc"] == pytest.approx(2 / 3)


def test_knn_accuracy_above_the_k_d_tree_bound_is_exact_nearest_neighbours():
    """Codes wider than KD_TREE_MAX_DIM go through brute force: the same neighbours as
    exact distances computed here."""
    from stages.core.probes import KD_TREE_MAX_DIM, knn_accuracy

    rng = np.random.default_rng(0)
    d = KD_TREE_MAX_DIM + 8
    x = {s: rng.standard_normal((n, d)) for s, n in (("train", 200), ("val", 50), ("test", 60))}
    y = {s: rng.integers(0, 3, len(v)) for s, v in x.items()}
    out, _ = knn_accuracy(x, y, (1, 5))
    for s in ("val", "test"):
        dist = ((x[s][:, None, :] - x["train"][None, :, :]) ** 2).sum(-1)
        nearest = np.argsort(dist, axis=1)
        assert out["k=1"][f"{s}_acc"] == pytest.approx((y["train"][nearest[:, 0]] == y[s]).mean())
        votes = np.array([np.bincount(y["train"][row[:5]], minlength=3).argmax() for row in nearest])
        assert out["k=5"][f"{s}_acc"] == pytest.approx((votes == y[s]).mean())


def test_paired_accuracy_counts_the_images_one_classifier_alone_gets_right():
    from stages.core.probes import paired_accuracy

    actual = np.zeros(100, dtype=int)
    a, b = actual.copy(), actual.copy()
    a[:10] = 1  # a wrong on 10 images, b on 20 (10 of them a's too)
    b[:20] = 1
    out = paired_accuracy(actual, a, b)
    assert (out["a_only"], out["b_only"]) == (10, 0)
    assert out["difference"] == pytest.approx(0.10)
    d = np.r_[np.zeros(10), np.ones(10), np.zeros(80)]
    assert out["se"] == pytest.approx(d.std(ddof=1) / 10)
    assert out["mcnemar_p"] == pytest.approx(2 * 0.5 ** 10)  # 10 of 10 discordant one way
    same = paired_accuracy(actual, a, a)
    assert (same["difference"], same["se"], same["mcnemar_p"]) == (0.0, 0.0, 1.0)


def test_test_image_differences_pairs_every_two_representations_on_what_both_have():
    from stages.core.probes import test_image_differences

    actual = np.arange(50) % 3
    preds = {"ae": {"mlp": actual, "k=1": actual}, "vae": {"mlp": (actual + 1) % 3, "k=1": actual},
             "pixels": {"mlp": actual}}
    out = test_image_differences(actual, preds)
    assert set(out) == {"ae-vae", "ae-pixels", "vae-pixels"}
    assert set(out["ae-vae"]) == {"mlp", "k=1"} and set(out["ae-pixels"]) == {"mlp"}
    assert out["ae-vae"]["mlp"]["difference"] == 1.0 and out["vae-pixels"]["mlp"]["difference"] == -1.0


def test_auroc_noise_agrees_with_a_bootstrap_over_the_images():
    """DeLong's se of each AUROC and of a difference of two on the same images is within 10 %
    of scipy's bootstrap over the images (2,000 resamples), and its AUROC is sklearn's."""
    from scipy import stats

    from stages.core.ood_scores import auroc, auroc_noise

    rng = np.random.default_rng(0)
    inside, outside = rng.normal(size=(2, 600)), rng.normal(0.6, 1.0, size=(2, 500))
    inside[1], outside[1] = inside[0] + rng.normal(0, 0.7, 600), outside[0] + rng.normal(0, 0.7, 500)
    out = auroc_noise({"a": (inside[0], outside[0]), "b": (inside[1], outside[1])}, [("a", "b"), ("a", "c")])
    assert set(out["differences"]) == {"a-b"}  # c is no score here

    def aucs(x, y, axis=-1):
        r = stats.rankdata(np.concatenate([x, y], axis=-1), axis=-1)
        a = (r[..., x.shape[-1]:].sum(-1) - y.shape[-1] * (y.shape[-1] + 1) / 2) / (x.shape[-1] * y.shape[-1])
        return np.array([a[0], a[1], a[0] - a[1]])  # the two scores are the first axis

    boot = stats.bootstrap((inside, outside), aucs, n_resamples=2000, method="percentile", random_state=0,
                           vectorized=True, axis=-1).standard_error
    delong = [out["auroc"]["a"]["se"], out["auroc"]["b"]["se"], out["differences"]["a-b"]["se"]]
    np.testing.assert_allclose(delong, boot, rtol=0.1)
    assert out["auroc"]["a"]["auroc"] == pytest.approx(auroc(inside[0], outside[0]))


KERNEL_FREE = """
import hashlib, sys
import numpy as np
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from conftest import synthetic_images
from stages.core.config import LogregConfig
from stages.core.probes import knn_accuracy, logistic_regression
from stages.core.representations import PCARepresentation, per_image_mse

images, labels = synthetic_images(3000, 7)
split = {"train": slice(0, 2000), "val": slice(2000, 2500), "test": slice(2500, 3000)}
pca = PCARepresentation.fit(images[split["train"]], 8)
codes = {s: pca.encode(images[i]) for s, i in split.items()}
y = {s: labels[i] for s, i in split.items()}
logreg = logistic_regression(codes, y, LogregConfig(C=(0.1, 1.0), max_iter=1000, tol=1e-3))
out = [codes["test"], pca.decode(codes["test"]), per_image_mse(images[split["test"]], pca.decode(codes["test"])),
       logreg.test_pred, np.array([logreg.val_acc, logreg.test_acc]),
       np.array([v for k in knn_accuracy(codes, y, (1, 5))[0].values() for v in k.values()])]
print(" ".join(hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16] for a in out))
"""


def test_pca_logreg_and_knn_give_the_same_bytes_whatever_the_blas_thread_count():
    """The same PCA codes, reconstructions, errors, logistic-regression predictions and
    k-NN accuracies with OpenBLAS on 1 and on 2 threads: what machines with other core
    counts would get."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    def run(threads: str) -> str:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        return subprocess.run([sys.executable, "-c", KERNEL_FREE, str(REPO)], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    one = run("1")
    assert len(one.split()) == 6 and run("2") == one


def test_a_row_without_images_says_none():
    """The anomaly figure of a representation that flags no test image (PCA of a code
    larger than the image) still draws, that row reading "none"."""
    from stages.core.plots import rows_of_images

    fig = rows_of_images({"pca: flagged": np.zeros((0, 28, 28)), "ae: flagged": np.zeros((3, 28, 28))})
    empty, full = fig.axes
    assert [t.get_text() for t in empty.texts] == ["none"] and not empty.images
    assert len(full.images) == 1 and not full.texts
