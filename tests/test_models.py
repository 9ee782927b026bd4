"""Models and the training loop: shapes, the course's two architectures from params,
the KL against torch.distributions, the [0, 1]-scale MSE, checkpoints, overfitting one
tiny batch, and fit's contract (best epoch, patience, divergence, determinism).

Everything runs on small synthetic tensors built here, on the CPU, in a few seconds.
"""
from __future__ import annotations

import copy
import pickle
import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from stages.core import training
from stages.core.config import InputConfig, check_loss_scale
from stages.core.inputs import normalize
from stages.core.io import load_checkpoint, save_checkpoint
from conftest import conv_cfg, mlp_cfg, train_cfg, vae_cfg

from stages.core.device import EVAL_BATCH, resolve_device, seed_everything
from stages.core.models import (
    MLP,
    VAE,
    AutoEncoder,
    checkpoint_config,
    from_checkpoint,
    kl_to_standard_normal,
)
from stages.core.errors import PipelineError
from stages.core.params import ParamError
from stages.core.training import TrainingError, fit, train_and_test

B = 3  # batch size of the shape tests


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    """seed_everything flips process-wide torch flags; put them back for other tests."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    benchmark = torch.backends.cudnn.benchmark
    rng = torch.get_rng_state()
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = benchmark
    torch.set_rng_state(rng)


def images(n: int, pre: InputConfig = InputConfig("unit", 0), seed: int = 0) -> torch.Tensor:
    """(n, 1, S, S) normalized like the pipeline's data: noise plus a bright bar."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 40, size=(n, 28, 28))
    for i in range(n):
        row = 2 + 2 * (i % 10)
        raw[i, row : row + 4, 4:24] = 220
    return normalize(raw.astype(np.uint8), pre)


def conv_modules(module: nn.Module) -> list[tuple[str, int, int]]:
    return [(type(m).__name__, m.in_channels, m.out_channels)
            for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------ shapes
def test_mlp_logits_shape():
    for side in (28, 32):
        model = MLP(mlp_cfg(in_features=side * side))
        assert model(torch.rand(B, 1, side, side)).shape == (B, 10)


# Every pair of (decoder, pad), (widths, pad), (decoder, out_conv), (normalize, pad)
# once: the cases that change a layer's shape or the output range.
ARCHS = [  # decoder, out_conv, batch_norm, hidden, widths, normalize, pad
    ("convtranspose", False, False, 0, (4, 8), "unit", 0),
    ("convtranspose", True, True, 16, (4, 8, 16), "symmetric", 2),
    ("upsample", False, True, 16, (4, 8, 16), "unit", 0),
    ("upsample", True, False, 0, (4, 8), "symmetric", 2),
    ("convtranspose", True, False, 16, (4, 8), "unit", 2),
    ("upsample", False, True, 0, (4, 8, 16), "symmetric", 0),
]


@pytest.mark.parametrize("decoder, out_conv, batch_norm, hidden, widths, normalize_, pad", ARCHS,
                         ids=[f"{d}-out{int(o)}-bn{int(b)}-h{h}-w{len(w)}-{n}-pad{p}" for d, o, b, h, w, n, p in ARCHS])
def test_conv_shapes_and_output_activation(decoder, out_conv, batch_norm, hidden, widths, normalize_, pad):
    side = 28 + 2 * pad
    cfg = conv_cfg(latent_dim=3, widths=widths, hidden=hidden, decoder=decoder, batch_norm=batch_norm,
                     out_conv=out_conv, normalize=normalize_, pad=pad)
    x = images(B, cfg.input)
    assert x.shape == (B, 1, side, side)
    activation = torch.tanh if normalize_ == "symmetric" else torch.sigmoid
    low = -1.0 if normalize_ == "symmetric" else 0.0

    ae = AutoEncoder(cfg)
    z = ae.encode(x)
    assert z.shape == (B, 3)
    assert ae.decode(z).shape == (B, 1, side, side)
    out = ae(x)
    assert out.shape == (B, 1, side, side)
    assert low <= out.min() and out.max() <= 1.0
    assert torch.equal(ae.decode(z), activation(ae.decoder(z)))

    vae = VAE(vae_cfg(**vars(cfg)))
    mu, logvar = vae.encode_dist(x)
    assert mu.shape == logvar.shape == (B, 3)
    assert vae(x).shape == (B, 1, side, side)
    assert torch.equal(vae.encode(x), mu)
    # No activation after the layer that makes the image, else the output range shrinks.
    assert isinstance(ae.decoder.net[-1], (nn.Conv2d, nn.ConvTranspose2d))
    assert ae.decoder.net[-1].out_channels == 1


# ------------------------------------------------------- the course's architectures
def test_course_mnist_autoencoder_from_params():
    cfg = conv_cfg(latent_dim=2, widths=(8, 16, 32), hidden=64, activation="tanh",
                     decoder="convtranspose", out_conv=False, normalize="unit", pad=0)
    ae = AutoEncoder(cfg)
    assert conv_modules(ae.encoder) == [("Conv2d", 1, 8), ("Conv2d", 8, 16), ("Conv2d", 16, 32)]
    assert all(m.stride == (2, 2) for m in ae.encoder.modules() if isinstance(m, nn.Conv2d))
    assert conv_modules(ae.decoder) == [("ConvTranspose2d", 32, 16), ("ConvTranspose2d", 16, 8),
                                        ("ConvTranspose2d", 8, 1)]
    assert any(isinstance(m, nn.Tanh) for m in ae.encoder.modules())
    assert not any(isinstance(m, nn.ReLU) for m in ae.modules())
    linears = [(m.in_features, m.out_features) for m in ae.modules() if isinstance(m, nn.Linear)]
    assert linears == [(32 * 4 * 4, 64), (64, 2), (2, 64), (64, 32 * 4 * 4)]
    x = images(2)
    z = ae.encode(x)
    assert z.shape == (2, 2)
    assert torch.equal(ae.decode(z), torch.sigmoid(ae.decoder(z)))
    assert ae(x).shape == (2, 1, 28, 28)


def test_course_fashion_autoencoder_on_32x32_from_params():
    cfg = conv_cfg(latent_dim=2, widths=(32, 64, 128), hidden=0, activation="relu",
                     decoder="convtranspose", out_conv=True, normalize="unit", pad=2)
    ae = AutoEncoder(cfg)
    assert conv_modules(ae.encoder) == [("Conv2d", 1, 32), ("Conv2d", 32, 64), ("Conv2d", 64, 128)]
    assert conv_modules(ae.decoder) == [("ConvTranspose2d", 128, 128), ("ConvTranspose2d", 128, 64),
                                        ("ConvTranspose2d", 64, 32), ("Conv2d", 32, 1)]
    assert ae.decoder.net[-1].kernel_size == (3, 3)
    # dense straight to 4x4x128, no hidden layer either side
    linears = [(m.in_features, m.out_features) for m in ae.modules() if isinstance(m, nn.Linear)]
    assert linears == [(128 * 4 * 4, 2), (2, 128 * 4 * 4)]
    x = images(2, cfg.input)
    h = ae.decoder.net[:3](ae.encode(x))
    assert h.shape == (2, 128, 4, 4)
    assert ae(x).shape == (2, 1, 32, 32)


def test_upsample_decoder_with_batch_norm_and_leaky_relu():
    cfg = conv_cfg(widths=(8, 16, 32), hidden=0, activation="leaky_relu", decoder="upsample",
                     batch_norm=True, out_conv=True, pad=2)
    ae = AutoEncoder(cfg)
    kinds = [type(m) for m in ae.decoder.net]
    assert nn.ConvTranspose2d not in kinds
    steps = [kinds[i : i + 4] for i, k in enumerate(kinds) if k is nn.Upsample]
    assert steps == [[nn.Upsample, nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU]] * 3
    assert all(m.negative_slope == 0.2 for m in ae.modules() if isinstance(m, nn.LeakyReLU))
    assert [m.size for m in ae.decoder.net if isinstance(m, nn.Upsample)] == [(8, 8), (16, 16), (32, 32)]
    assert ae(images(2, cfg.input)).shape == (2, 1, 32, 32)


# ----------------------------------------------------------- the course's models by name
def arch_params(arch: str) -> dict:
    """TINY's params with ``model.arch`` set, on each course model's own input and latent."""
    from conftest import TINY

    p = copy.deepcopy(TINY)
    p["model"]["arch"] = arch
    if arch == "guide12":
        p["latent_dim"] = 128
        p["input"]["normalize"] = "symmetric"
        p["train_ae"]["loss"] = p["train_vae"]["loss"] = "mse"
    elif arch == "keras_practice":
        p["latent_dim"] = 7 * 7 * 64
        p["train_ae"]["loss"] = "bce"
    elif arch.startswith("keras_fashion"):
        p["input"]["pad"] = 2
    return p


@pytest.mark.parametrize("arch", ["backbone", "mnist_2d", "keras_fashion", "keras_fashion_upsample", "guide12",
                                  "keras_practice"])
def test_every_arch_is_an_ae_and_a_vae_that_learns_one_batch(arch):
    from stages.core import builders

    p = arch_params(arch)
    for build in (builders.autoencoder, builders.vae):
        model, _ = build(p)
        x = images(8, model.cfg.input)
        z = model.encode(x)
        assert z.shape == (8, p["latent_dim"])  # a spatial latent is flattened
        assert model.decode(z).shape == x.shape
        rebuilt = from_checkpoint({"model": model.state_dict(), "config": checkpoint_config(model)}).eval()
        model.eval()
        assert torch.equal(rebuilt.encode(x), model.encode(x))
        model.train()
        torch.manual_seed(0)
        first, last = overfit(model, x, 40)
        assert last < 0.8 * first, (arch, build.__name__)


def test_presets_are_the_params_the_readme_gives():
    from stages.core import builders

    ae, _ = builders.autoencoder(arch_params("mnist_2d"))
    by_params = AutoEncoder(conv_cfg(latent_dim=2, widths=(8, 16, 32), hidden=64, activation="tanh",
                                     decoder="convtranspose", batch_norm=False, out_conv=False))
    assert str(ae) == str(by_params)
    ae, _ = builders.autoencoder(arch_params("keras_fashion_upsample"))
    assert any(isinstance(m, nn.BatchNorm2d) for m in ae.decoder.modules())
    assert ae(images(2, ae.cfg.input)).shape == (2, 1, 32, 32)


def test_guide12_layers_and_shapes_are_the_guides():
    from stages.core import builders

    ae, _ = builders.autoencoder(arch_params("guide12"))
    ae.eval()  # dropout off
    x = images(2, ae.cfg.input)
    assert ae.encoder[0].kernel_size == (3, 3) and ae.encoder[0].padding == (0, 0)  # 28 -> 26
    assert ae.encoder[:3](x).shape == (2, 16, 13, 13)
    assert ae.encoder(x).shape == (2, 2704)
    assert [type(m) for m in ae.to_latent] == [nn.Linear, nn.ReLU]
    assert (ae.encode(x) >= 0).all()  # the guide's bottleneck is behind a ReLU
    assert ae.decoder[:3](ae.encode(x)).shape == (2, 16, 13, 13)
    t = ae.decoder[3]
    assert (t.kernel_size, t.stride, t.padding) == ((6, 6), (2, 2), (1, 1))
    assert torch.equal(ae(x), torch.tanh(ae.decoder(ae.encode(x))))  # [-1, 1] data: tanh
    vae, _ = builders.vae(arch_params("guide12"))
    assert isinstance(vae.to_latent, nn.Linear) and isinstance(vae.to_logvar, nn.Linear)  # mu may be negative


def test_keras_practice_latent_is_a_7x7x64_map():
    from stages.core import builders

    ae, _ = builders.autoencoder(arch_params("keras_practice"))
    x = images(2, ae.cfg.input)
    assert ae.encoder(x).shape == (2, 64, 7, 7)
    assert torch.equal(ae.encode(x), ae.encoder(x).flatten(1))  # the map itself, flattened
    assert [m.scale_factor for m in ae.decoder if isinstance(m, nn.Upsample)] == [2.0, 2.0]
    assert conv_modules(ae.decoder) == [("Conv2d", 64, 64), ("Conv2d", 64, 32), ("Conv2d", 32, 1)]
    vae, _ = builders.vae(arch_params("keras_practice"))
    assert vae.to_logvar[0].kernel_size == (1, 1)  # a Gaussian per position and channel


@pytest.mark.parametrize("arch, changes, key, words", [
    ("keras_practice", {"latent_dim": 2}, "latent_dim", "7x7x64 feature map, 3136 numbers, not 2"),
    ("nonsense", {}, "model.arch", "keras_practice"),
    ("guide12", {"input": {"normalize": "symmetric", "pad": 0}, "train_vae": "bce"}, "train_vae.loss", "bce needs"),
])
def test_a_combination_that_makes_no_sense_is_one_line_naming_the_key(arch, changes, key, words):
    from stages.core import builders

    p = arch_params("backbone")
    p["model"]["arch"] = arch
    for k, v in changes.items():
        if k == "train_vae":
            p[k]["loss"] = v
        else:
            p[k] = v
    with pytest.raises(ParamError) as e:
        builders.vae(p)
    assert str(e.value).startswith(key) and words in str(e.value) and "\n" not in str(e.value), str(e.value)


# -------------------------------------------------------------------------------- KL
def test_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(16, 5, generator=gen) * 2, torch.randn(16, 5, generator=gen)
    expected = kl_divergence(Normal(mu, torch.exp(logvar / 2)), Normal(0.0, 1.0)).sum(-1)
    got = kl_to_standard_normal(mu, logvar)
    assert got.shape == (16,)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_kl_is_zero_at_the_prior():
    assert torch.equal(kl_to_standard_normal(torch.zeros(4, 3), torch.zeros(4, 3)), torch.zeros(4))


# ------------------------------------------------------------------------------- VAE
def test_vae_loss_is_the_beta_objective_in_training_and_the_negative_elbo_in_eval():
    torch.manual_seed(0)
    vae = VAE(vae_cfg(widths=(4, 8), hidden=16, loss="bce", beta=0.5))
    cfg = vae.cfg
    x = images(4)
    for mode, weight in ((vae.train, 0.5), (vae.eval, 1.0)):
        mode()
        loss, stats = vae.loss(x)
        stats = {k: float(v) for k, v in stats.items()}  # detached 0-d tensors
        assert set(stats) == {"loss", "recon", "kl", "mse"}
        assert stats["loss"] == pytest.approx(stats["recon"] + weight * stats["kl"], rel=1e-6)
        assert vae.loss(x)[0].item() != loss.item()  # z is sampled in both modes
    # In eval mode, with the same draw by hand: recon of the sample, mse of the mean.
    torch.manual_seed(1)
    _, stats = vae.loss(x)
    torch.manual_seed(1)
    mu, logvar = vae.encode_dist(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = nn.functional.binary_cross_entropy_with_logits(vae.decoder(z), x, reduction="sum") / len(x)
    assert float(stats["recon"]) == pytest.approx(recon.item(), rel=1e-5)
    assert float(stats["kl"]) == pytest.approx(kl_to_standard_normal(mu, logvar).mean().item(), rel=1e-5)
    assert float(stats["mse"]) == pytest.approx((vae.decode(mu) - x).pow(2).mean().item(), rel=1e-5)


def test_evaluate_seeds_the_vae_draws_and_leaves_training_randomness_alone():
    torch.manual_seed(0)
    vae = VAE(vae_cfg(widths=(4, 8), hidden=16, loss="bce"))
    x, y = images(20), torch.zeros(20, dtype=torch.long)
    state = torch.get_rng_state()
    first = training.evaluate_split(vae, x, y, batch_size=8)
    assert torch.equal(torch.get_rng_state(), state)  # training's stream is untouched
    torch.randn(3)  # whatever the global stream did in between
    assert training.evaluate_split(vae, x, y, batch_size=8) == first
    assert training.evaluate_split(vae, x, y, batch_size=8, seed=1) != first


# ------------------------------------------------------------------------- unit MSE
@pytest.mark.parametrize("kind", ["ae", "vae"])
@pytest.mark.parametrize("normalize_, pad", [("unit", 0), ("unit", 2), ("symmetric", 0), ("symmetric", 2)])
def test_stats_mse_is_per_pixel_on_unit_scale_of_the_28x28(kind, normalize_, pad):
    torch.manual_seed(0)
    cfg = conv_cfg(widths=(4, 8), hidden=16, normalize=normalize_, pad=pad)
    model = (VAE(vae_cfg(**vars(cfg))) if kind == "vae" else AutoEncoder(cfg)).eval()
    x = images(5, cfg.input)
    with torch.no_grad():
        _, stats = model.loss(x)
        x_hat = model(x).numpy()
    x = x.numpy()
    if normalize_ == "symmetric":
        x, x_hat = x * 0.5 + 0.5, x_hat * 0.5 + 0.5
    crop = (..., slice(pad, pad + 28), slice(pad, pad + 28))
    expected = np.mean((x_hat[crop] - x[crop]) ** 2)
    assert float(stats["mse"]) == pytest.approx(float(expected), rel=1e-5)


def test_symmetric_mse_stat_is_a_quarter_of_the_training_loss():
    torch.manual_seed(0)
    ae = AutoEncoder(conv_cfg(widths=(4, 8), hidden=16, normalize="symmetric"))
    x = images(5, InputConfig("symmetric", 0))
    with torch.no_grad():
        loss, stats = ae.loss(x)
        raw = (ae(x) - x).pow(2).mean().item()  # on [-1, 1]
    assert loss.item() == pytest.approx(raw, rel=1e-5)
    assert float(stats["mse"]) == pytest.approx(raw / 4, rel=1e-5)


def test_bce_with_symmetric_data_is_refused():
    with pytest.raises(ParamError) as e:
        check_loss_scale("train_vae", "bce", InputConfig("symmetric", 0))
    assert e.value.key == "train_vae.loss"
    assert re.match(r"train_vae\.loss: bce needs targets in \[0, 1\]", str(e.value))
    check_loss_scale("train_vae", "bce", InputConfig("unit", 2))
    check_loss_scale("train_ae", "mse", InputConfig("symmetric", 0))


# ----------------------------------------------------------------------- checkpoints
class NotAWeight:
    pass


@pytest.mark.parametrize("kind", ["mlp", "ae", "vae"])
def test_checkpoint_round_trip_rebuilds_the_same_model(kind, tmp_path):
    torch.manual_seed(0)
    cfg = conv_cfg(latent_dim=3, widths=(4, 8), hidden=16, batch_norm=True, decoder="upsample",
                     activation="elu", out_conv=True, normalize="symmetric", pad=2)
    if kind == "mlp":
        model, x = MLP(mlp_cfg(in_features=32 * 32, hidden=(16, 8), dropout=0.3, input=cfg.input)), images(4, cfg.input)
    elif kind == "ae":
        model, x = AutoEncoder(cfg), images(4, cfg.input)
    else:
        model, x = VAE(vae_cfg(**vars(cfg), beta=2.5)), images(4, cfg.input)
    model.train()
    with torch.no_grad():
        model(x)  # batch-norm running stats away from their initial values
    model.eval()
    save_checkpoint(tmp_path / "m.pt", model.state_dict(), checkpoint_config(model))
    checkpoint = load_checkpoint(tmp_path / "m.pt")
    rebuilt = from_checkpoint(checkpoint).eval()
    assert type(rebuilt) is type(model)
    assert rebuilt.cfg == model.cfg and rebuilt.cfg.input == cfg.input  # loss, beta and input transform too
    assert state_equal(rebuilt.state_dict(), model.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
        if kind != "mlp":
            y = torch.zeros(len(x), dtype=torch.long)
            assert training.evaluate_split(rebuilt, x, y) == training.evaluate_split(model, x, y)  # same seeded draws
        if kind == "vae":
            assert rebuilt.cfg.beta == 2.5
            assert all(torch.equal(a, b) for a, b in zip(rebuilt.encode_dist(x), model.encode_dist(x)))


def test_load_checkpoint_refuses_arbitrary_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "x": NotAWeight()}, path)
    assert isinstance(torch.load(path, weights_only=False)["x"], NotAWeight)  # a valid file
    with pytest.raises(PipelineError, match=r"evil\.pt is not a checkpoint this pipeline can load \(UnpicklingError"):
        load_checkpoint(path)


@pytest.mark.parametrize("damage", ["truncated", "pickled_object", "not_a_checkpoint"])
def test_damaged_checkpoint_is_refused_with_one_line_naming_the_stage(damage, tmp_path):
    path = tmp_path / "ae.pt"
    save_checkpoint(path, AutoEncoder(conv_cfg(widths=(4,), hidden=0)).state_dict(), {"kind": "ae"})
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "pickled_object":
        with open(path, "wb") as f:
            pickle.dump(NotAWeight(), f)
    else:
        torch.save({"weights": {}}, path)
    with pytest.raises(PipelineError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg and "dvc repro --force train_ae" in msg and "\n" not in msg, msg


# ----------------------------------------------------------------- overfit one batch
def overfit(model: nn.Module, x: torch.Tensor, steps: int) -> tuple[float, float]:
    """The loss on ``x`` before and after ``steps`` Adam steps on it alone."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.loss(x)[0].item()
    for _ in range(steps):
        loss, _ = model.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, model.loss(x)[0].item()


def test_autoencoder_overfits_one_tiny_batch():
    torch.manual_seed(0)
    ae = AutoEncoder(conv_cfg(latent_dim=4, widths=(8, 16), hidden=32, batch_norm=False))
    first, last = overfit(ae, images(8), 200)
    assert last < 0.1 * first  # reaches ~0.03


def test_mlp_memorizes_random_labels():
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    mlp = MLP(mlp_cfg(hidden=(32,), dropout=0.0))
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    for _ in range(100):
        loss, _ = mlp.loss(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    mlp.eval()
    assert mlp.loss(x, y)[1]["acc"] == 1.0


# ---------------------------------------------------------------------- training loop
def toy_data(n: int, seed: int, features: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Random points with random labels: the model can only overfit, so val loss turns up."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, features, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def toy_mlp(seed: int = 0) -> MLP:
    seed_everything(seed)
    return MLP(mlp_cfg(in_features=8, hidden=(64,), dropout=0.1))


def test_fit_keeps_the_best_epoch_weights():
    model = toy_mlp()
    train, val = toy_data(64, 1), toy_data(64, 2)
    cfg = train_cfg(epochs=12, batch_size=16, lr=1e-2, lr_schedule="constant")
    history, best_epoch = fit(model, train, val, cfg, "toy")
    assert list(history.columns) == ["epoch", "train_loss", "train_acc", "train_eval_loss", "train_eval_acc", "val_loss", "val_acc", "lr"]
    assert history["epoch"].tolist() == list(range(1, 13))
    assert best_epoch == history["epoch"][history["val_loss"].idxmin()]
    assert best_epoch < 12  # precondition: the last epoch is not the best, so restoring matters
    val_loss = training.evaluate_split(model, *val)["loss"]
    assert val_loss == pytest.approx(history.set_index("epoch").loc[best_epoch, "val_loss"], rel=1e-6)
    assert val_loss < history["val_loss"].iloc[-1]


@pytest.mark.parametrize("schedule", ["onecycle", "constant"])
def test_lr_schedule(schedule):
    history, _ = fit(toy_mlp(), toy_data(64, 1), toy_data(32, 2),
                     train_cfg(epochs=4, batch_size=16, lr=1e-2, lr_schedule=schedule), "toy")
    lr = history["lr"].tolist()
    if schedule == "constant":
        assert lr == [1e-2] * 4
    else:  # warm up to lr within the first third, then anneal below the starting lr (lr / 25)
        assert max(lr) <= 1e-2 and lr[0] > lr[-1] and lr[-1] < 1e-2 / 25


def test_fit_prints_one_line_per_epoch(capsys):
    fit(toy_mlp(), toy_data(32, 1), toy_data(32, 2), train_cfg(epochs=3, batch_size=16), "toy", "probe x")
    *lines, cost = capsys.readouterr().out.splitlines()
    assert len(lines) == 3, lines
    assert all(re.match(r"probe x \d/3: train_loss=\S+ val_loss=\S+( \*)? \(\d+\.\d s\)$", line) for line in lines), lines
    assert re.match(r"probe x: train loss re-evaluated after each epoch on 32 train images: \d+\.\d s in all$", cost)


def test_after_epoch_train_loss_is_the_eval_mode_loss_of_a_fixed_train_subset():
    """The course's second curve: the epoch's weights, dropout off, on the same seeded train
    images every epoch (as many as val); the last epoch's equals a fresh evaluation."""
    train, val = toy_data(64, 1), toy_data(16, 2)
    model = toy_mlp()
    cfg = train_cfg(epochs=1, batch_size=16, patience=0)
    history, _ = fit(model, train, val, cfg, "toy")  # one epoch: the model keeps its weights
    subset = torch.randperm(64, generator=torch.Generator().manual_seed(cfg.seed))[:16]
    again = training.evaluate_split(model, train[0][subset], train[1][subset])
    assert history["train_eval_loss"].iloc[-1] == pytest.approx(again["loss"], rel=1e-6)
    assert not history["train_eval_loss"].equals(history["train_loss"])  # dropout on vs off, weights moving


def fake_evaluate(monkeypatch, losses: list[float]) -> list[dict]:
    """Make training.evaluate_split return ``losses`` in turn; return the model states it saw."""
    seen, calls = [], []

    def evaluate(model, x, y, batch_size=EVAL_BATCH):  # each epoch: val, then the train subset
        calls.append(len(x))
        if len(calls) % 2 == 0:
            return {"loss": 0.0}
        seen.append(copy.deepcopy(model.state_dict()))
        return {"loss": losses[len(seen) - 1]}

    monkeypatch.setattr(training, "evaluate_split", evaluate)
    return seen


def test_patience_stops_when_val_loss_stops_improving(monkeypatch):
    seen = fake_evaluate(monkeypatch, [1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3])
    model = toy_mlp()
    history, best_epoch = fit(model, toy_data(32, 1), toy_data(32, 2),
                              train_cfg(epochs=10, batch_size=16, lr=1e-2, patience=2), "toy")
    assert best_epoch == 2
    assert history["epoch"].tolist() == [1, 2, 3, 4]  # epochs 3 and 4 did not improve
    assert state_equal(model.state_dict(), seen[1])  # the weights evaluated in epoch 2
    assert not state_equal(model.state_dict(), seen[-1])


def test_patience_zero_never_stops(monkeypatch):
    fake_evaluate(monkeypatch, [1.0, 2.0, 3.0, 4.0, 5.0])
    history, best_epoch = fit(toy_mlp(), toy_data(32, 1), toy_data(32, 2),
                              train_cfg(epochs=5, batch_size=16, patience=0), "toy")
    assert (best_epoch, len(history)) == (1, 5)


def test_train_and_test_metrics():
    model = toy_mlp()
    data = {"train": toy_data(64, 1), "val": toy_data(32, 2), "test": toy_data(32, 3)}
    history, metrics = train_and_test(model, data, train_cfg(epochs=3, batch_size=16, lr=1e-2), "toy")
    assert set(metrics) == {"test_loss", "test_acc", "val_loss", "val_acc", "best_epoch", "epochs_run"}
    assert metrics["epochs_run"] == len(history) == 3
    best = history.set_index("epoch").loc[metrics["best_epoch"]]
    assert metrics["val_loss"] == best["val_loss"] and metrics["val_acc"] == best["val_acc"]
    assert metrics["val_loss"] == history["val_loss"].min()
    assert metrics["test_loss"] == pytest.approx(training.evaluate_split(model, *data["test"])["loss"], rel=1e-6)


class NaNAfter(nn.Module):
    """A model whose loss turns NaN after ``calls`` training batches (in eval mode when ``in_eval``)."""

    def __init__(self, calls: int = 0, in_eval: bool = False):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.calls, self.in_eval = calls, in_eval

    def loss(self, x, y):
        if self.in_eval:
            bad = not self.training
        else:
            bad = self.training and self.calls <= 0
            self.calls -= self.training
        loss = (self.w * x.mean()).sum() * (float("nan") if bad else 1.0)
        return loss, {"loss": loss.detach()}


@pytest.mark.parametrize("calls, epoch", [(0, 1), (4, 2)])
def test_non_finite_loss_names_the_epoch_and_the_lr(calls, epoch):
    model = NaNAfter(calls)
    with pytest.raises(TrainingError) as e:
        fit(model, toy_data(64, 1), toy_data(16, 2), train_cfg(epochs=3, batch_size=16, lr=0.05), "train_ae")
    msg = str(e.value)
    assert re.search(rf"\bin epoch {epoch}\b", msg), msg
    assert "lower train_ae.lr" in msg and "0.05" in msg


def test_divergent_lr_on_the_mlp_raises_training_error():
    with pytest.raises(TrainingError, match=r"in epoch \d+: .*lower toy\.lr \(now 1e\+06\)"):
        fit(toy_mlp(), toy_data(64, 1), toy_data(16, 2),
            train_cfg(epochs=5, batch_size=16, lr=1e6, optimizer="sgd"), "toy")


def test_never_finite_val_loss_raises_training_error():
    with pytest.raises(TrainingError, match=r"validation loss was never finite; lower toy\.lr"):
        fit(NaNAfter(in_eval=True), toy_data(32, 1), toy_data(16, 2), train_cfg(epochs=2, batch_size=16), "toy")


# ----------------------------------------------------------------------- determinism
def fit_vae(seed: int, init_seed: int | None = None) -> tuple[dict, object]:
    seed_everything(seed if init_seed is None else init_seed)
    model = VAE(vae_cfg(latent_dim=2, widths=(4, 8), hidden=16, batch_norm=True, loss="bce"))
    x = images(24, seed=1)
    y = torch.zeros(24, dtype=torch.long)
    history, _ = fit(model, (x[:16], y[:16]), (x[16:], y[16:]),
                     train_cfg(epochs=2, batch_size=8, seed=seed), "train_vae")
    return model.state_dict(), history


def test_same_seed_same_weights_and_history():
    state_a, history_a = fit_vae(0)
    state_b, history_b = fit_vae(0)
    assert state_equal(state_a, state_b)
    assert history_a.equals(history_b)
    state_c, history_c = fit_vae(1)
    assert not state_equal(state_a, state_c)
    assert not history_a.equals(history_c)


def test_train_seed_alone_changes_the_batch_order():
    state_a, _ = fit_vae(0, init_seed=0)
    state_b, _ = fit_vae(1, init_seed=0)  # same initial weights and noise, other shuffles
    assert not state_equal(state_a, state_b)


# --------------------------------------------------------------------------- devices
def test_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ParamError, match="device: cuda was asked for"):
        resolve_device("cuda")
    with pytest.raises(ParamError) as e:
        resolve_device("tpu")
    assert e.value.key == "device"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
