"""train_classifier: the pixel baselines, the course's MLP (784 -> 128 -> 64 -> 10,
dropout 0.2) and a logistic regression.

They are also the pixel row of downstream's comparison, computed once here, so a latent
experiment never recomputes them; their test predictions are kept, so downstream pairs
every probe with them image by image. The best epoch and C are chosen on val; test is run
once, after.
"""
from __future__ import annotations

import time
from pathlib import Path

from stages.core import builders, paths, plots
from stages.core.config import LogregConfig
from stages.core.data import IMAGE_SIDE, N_CLASSES, SPLITS
from stages.core.device import batched, resolve_device
from stages.core.inputs import load_tensors, to_unit
from stages.core.cli import run
from stages.core.io import fmt_metrics, save_arrays, save_checkpoint, save_figure, write_csv, write_json
from stages.core.models import checkpoint_config
from stages.core.params import from_section, top_level
from stages.core.probes import confusion_counts, logistic_regression, standardize
from stages.core.training import live_log, train_and_test


def main(params: dict, root: Path = Path(".")) -> dict:
    logreg_cfg = from_section(LogregConfig, params, "logreg")
    pre = builders.input_config(params)
    device = resolve_device(top_level(params, "device"))
    start = time.perf_counter()
    model, cfg = builders.classifier(params, (IMAGE_SIDE + 2 * pre.pad) ** 2, N_CLASSES, pre)  # checked before any work
    model = model.to(device)
    data, classes = load_tensors(root / paths.PROCESSED_DIR, pre)
    x_test, y_test = data["test"]
    with live_log(root / paths.CLASSIFIER_PLOTS) as live:  # each epoch, as it goes
        history, mlp = train_and_test(model, data, cfg, "train_classifier", live=live)
    model.eval()
    predicted = batched(lambda xb: model(xb).argmax(1), x_test, device).numpy()
    actual = y_test.numpy()

    logreg_start = time.perf_counter()
    pixels = standardize({s: to_unit(data[s][0], pre).flatten(1).numpy() for s in SPLITS})
    logreg = logistic_regression(pixels, {s: data[s][1].numpy() for s in SPLITS}, logreg_cfg, cfg.seed)
    print(f"train_classifier: logreg on pixels: C={logreg.C:g}, iterations {logreg.n_iter} "
          f"({time.perf_counter() - logreg_start:.1f} s)")

    metrics = {"classifier": {"test_acc": mlp["test_acc"], "logreg_test_acc": logreg.test_acc}}
    report = {"pixels": {"dim": pixels["train"].shape[1], "mlp": mlp, "logreg": logreg.record()}}
    save_checkpoint(root / paths.CLASSIFIER, model.state_dict(), checkpoint_config(model))
    write_json(root / paths.CLASSIFIER_METRICS, metrics)
    write_json(root / paths.PIXELS_REPORT, report)
    save_arrays(root / paths.PIXEL_PREDICTIONS, mlp=predicted.astype("int8"), logreg=logreg.test_pred.astype("int8"))
    write_csv(root / paths.CLASSIFIER_PLOTS / "confusion.csv", confusion_counts(actual, predicted, classes))
    save_figure(root / paths.CLASSIFIER_PLOTS / "curves.png", plots.curves(
        history, {"loss": "cross-entropy (nats per image)", "acc": "accuracy"}, "train_classifier"))
    save_figure(root / paths.CLASSIFIER_PLOTS / "confusion.png", plots.confusion(actual, predicted, classes, "Pixel MLP, test set"))
    titles = [f"{classes[p]} / {classes[t]}" for p, t in zip(predicted[:24], actual[:24])]
    save_figure(root / paths.CLASSIFIER_PLOTS / "predictions.png",
                plots.image_grid(to_unit(x_test[:24], pre), titles, suptitle="predicted / true (test)"))
    print(f"train_classifier: {fmt_metrics(metrics['classifier'])} ({time.perf_counter() - start:.1f} s on {device})")
    return metrics


if __name__ == "__main__":
    run(main, stage=True)
