"""params.yaml validation: params.yaml is the one place a default lives, and every bad
value, missing or unknown key fails at the stage boundary, before any data is read,
with a ParamError whose message names the key by its path in params.yaml."""
from __future__ import annotations

import copy
import re
import shutil
from dataclasses import dataclass

import pytest
import yaml
from conftest import REPO, Reads, listed_keys

from stages import download, evaluate, ood, preprocess, train_ae, train_classifier, train_vae
from stages.core import builders
from stages.core.builders import conv_config
from stages.core.config import AEConfig, ClassifierConfig, DataConfig, InputConfig, VAEConfig
from stages.core.data import MIRROR_ENV
from stages.core.errors import PipelineError
from stages.core.params import ParamError, from_section, load_params, read_params_by_stage


def assert_names(error: ParamError, key: str) -> None:
    """The message names ``key`` exactly: not missing, not double-qualified (data.data.x)."""
    msg = str(error)
    assert re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", msg), f"{key!r} not named in: {msg}"
    assert "params.yaml" in msg, msg


def with_values(params: dict, **changes) -> dict:
    """A copy of params with ``section__key=value`` (or top-level ``key=value``) changed;
    the value ``DROP`` removes the key."""
    p = copy.deepcopy(params)
    for dotted, value in changes.items():
        section, _, key = dotted.rpartition("__")
        target = p[section] if section else p
        if value is DROP:
            del target[key]
        else:
            target[key] = value
    return p


DROP = object()


# ----------------------------------------------------------------------- from_section
def test_unknown_key_names_it_and_what_it_could_have_meant(params):
    with pytest.raises(ParamError) as e:
        from_section(AEConfig, with_values(params, train_ae__lrate=0.01), "train_ae")
    assert_names(e.value, "train_ae.lrate")
    assert re.search(r"known keys of 'train_ae': .*\blr\b", str(e.value))


@pytest.mark.parametrize("change, key", [
    ({"model__latent_dim": 8}, "model.latent_dim"),  # top-level
    ({"model__normalize": "unit"}, "model.normalize"),  # the input section's
    ({"model__pad": 2}, "model.pad"),
])
def test_a_key_of_another_section_is_unknown_here(params, change, key):
    """Accepting it would ignore it silently: the value used comes from elsewhere."""
    with pytest.raises(ParamError, match="unknown key") as e:
        conv_config(with_values(params, **change), "train_ae", "mse")
    assert_names(e.value, key)


def test_train_vae_holds_the_keys_of_two_configs_and_no_other(params):
    """``beta`` is the VAE's config's, the rest its training config's: both are known
    keys of train_vae; a model key of another section is not."""
    with pytest.raises(ParamError, match="unknown key") as e:
        builders.vae(with_values(params, train_vae__betta=2.0))
    assert_names(e.value, "train_vae.betta")
    assert re.search(r"did you mean 'beta'\?.*known keys of 'train_vae': .*\bbeta\b.*\bepochs\b", str(e.value))
    with pytest.raises(ParamError, match="unknown key") as e:
        builders.vae(with_values(params, train_vae__widths=[4]))
    assert_names(e.value, "train_vae.widths")
    model, _ = builders.vae(with_values(params, train_vae__beta=2))
    assert model.cfg.beta == 2.0 and isinstance(model.cfg.beta, float)


def test_a_training_section_may_not_set_normalize(params):
    with pytest.raises(ParamError, match="unknown key") as e:
        builders.autoencoder(with_values(params, train_ae__normalize="unit"))
    assert_names(e.value, "train_ae.normalize")


@pytest.mark.parametrize("key, value", [
    ("epochs", "ten"), ("epochs", 2.5), ("epochs", True), ("lr", "fast"), ("lr", None),
    ("optimizer", 3),
])
def test_wrong_type_names_key(params, key, value):
    with pytest.raises(ParamError, match="must be") as e:
        from_section(AEConfig, with_values(params, **{f"train_ae__{key}": value}), "train_ae")
    assert_names(e.value, f"train_ae.{key}")


@pytest.mark.parametrize("section, cls", [("train_classifier", ClassifierConfig), ("train_ae", AEConfig),
                                          ("train_vae", VAEConfig)])
def test_the_training_seed_is_one_top_level_key(params, section, cls):
    """The three training configs read params.yaml's top-level ``seed``: a wrong or missing
    one names ``seed``; the per-stage key it replaced is refused, saying where it went."""
    others = ["beta"] if section == "train_vae" else []
    assert from_section(cls, with_values(params, seed=3), section, others).seed == 3
    with pytest.raises(ParamError, match="must be int") as e:
        from_section(cls, with_values(params, seed="0"), section, others)
    assert_names(e.value, "seed")
    with pytest.raises(ParamError, match="missing top-level key") as e:
        from_section(cls, with_values(params, seed=DROP), section, others)
    assert_names(e.value, "seed")
    with pytest.raises(ParamError, match="seed is a top-level key of params.yaml") as e:
        from_section(cls, with_values(params, **{f"{section}__seed": 0}), section, others)
    assert_names(e.value, f"{section}.seed")


@pytest.mark.parametrize("value, expected", [("1e-3", 1e-3), ("2.5E-4", 2.5e-4), (1, 1.0), (0.01, 0.01)])
def test_floats_as_strings_accepted(params, value, expected):
    cfg = from_section(AEConfig, with_values(params, train_ae__lr=value), "train_ae")
    assert type(cfg.lr) is float and cfg.lr == expected


def test_lists_become_tuples(params):
    cfg = from_section(ClassifierConfig, with_values(params, train_classifier__hidden=[32, 16]), "train_classifier")
    assert cfg.hidden == (32, 16)
    for value, key in ((32, "train_classifier.hidden"), ([32, "wide"], "train_classifier.hidden[1]")):
        with pytest.raises(ParamError) as e:
            from_section(ClassifierConfig, with_values(params, train_classifier__hidden=value), "train_classifier")
        assert_names(e.value, key)


def test_missing_key_names_it():
    @dataclass(frozen=True)
    class Needs:
        size: int

    with pytest.raises(ParamError, match="missing key") as e:
        from_section(Needs, {"section": {}}, "section")
    assert_names(e.value, "section.size")
    assert from_section(Needs, {"section": {"size": 3}}, "section").size == 3


@pytest.mark.parametrize("section, key", [("train_ae", "epochs"), ("train_vae", "beta"), ("model", "widths"),
                                          ("input", "pad"), ("data", "seed"), ("evaluate", "grid_size"),
                                          ("logreg", "tol"), ("train_classifier", "dropout")])
def test_no_key_has_a_default_in_code(params, section, key):
    """Each section's dataclass lacks defaults: dropping a key from params.yaml is an
    error naming it, never a silent fallback to a second default."""
    stage = {"train_ae": train_ae, "train_vae": train_vae, "model": train_ae, "input": train_classifier,
             "data": preprocess, "evaluate": evaluate, "logreg": train_classifier,
             "train_classifier": train_classifier}[section]
    with pytest.raises(ParamError, match="missing key") as e:
        stage.main(with_values(params, **{f"{section}__{key}": DROP}), REPO / "nonexistent")
    assert_names(e.value, f"{section}.{key}")


def test_a_misspelled_section_is_missing_not_defaulted(params):
    p = with_values(params)
    p["train_aee"] = p.pop("train_ae")
    with pytest.raises(ParamError, match="missing section") as e:
        train_ae.main(p, REPO / "nonexistent")
    assert_names(e.value, "train_ae")


def test_real_params_are_valid(params):
    """The shrunk params.yaml builds every config (else the tests below prove nothing)."""
    conv = conv_config(params, "train_ae", "mse")
    assert (conv.latent_dim, conv.widths, conv.hidden) == (params["latent_dim"], (4, 8), 16)
    from_section(DataConfig, params, "data")
    from_section(InputConfig, params, "input")
    builders.autoencoder(params)
    builders.vae(params)
    assert from_section(ClassifierConfig, params, "train_classifier").hidden == (32, 16)


# --------------------------------------------------------------- params.yaml as a whole
def test_every_top_level_key_is_read_by_a_stage_and_every_read_key_exists():
    """dvc.yaml lists what each stage reads (tests/test_stages.py checks that against
    what the stages really read); together they read all of params.yaml."""
    listed = set().union(*read_params_by_stage(REPO / "dvc.yaml").values())
    assert listed == set(load_params(REPO))


def test_download_and_preprocess_read_exactly_the_params_dvc_yaml_lists(params, mirror, synthetic_sums, tmp_path,
                                                                         monkeypatch):
    """As tests/test_stages.py checks for the later stages."""
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    for stage in (download, preprocess):
        reads = Reads(params)
        stage.main(reads, tmp_path)
        assert reads.keys_read == listed_keys(params, dvc_params(stage.__name__.rsplit(".", 1)[-1]))


def dvc_params(stage: str) -> set[str]:
    """The entries of ``stage``'s ``params`` in dvc.yaml, as written (``ood``, ``data.dataset``)."""
    return {str(p) for p in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage].get("params", [])}


def project(tmp_path, params: dict):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "dvc.yaml", tmp_path)
    return tmp_path


def test_an_unknown_top_level_key_is_an_error_naming_it(params, tmp_path):
    p = with_values(params)
    p["train_aee"] = p.pop("train_ae")
    with pytest.raises(ParamError, match="unknown top-level key") as e:
        load_params(project(tmp_path, p))
    assert_names(e.value, "train_aee")
    assert "did you mean 'train_ae'" in str(e.value)


def test_an_unknown_top_level_key_stops_the_stage_command(params, tmp_path, monkeypatch, capsys):
    from stages.core.cli import run

    monkeypatch.chdir(project(tmp_path, with_values(params, latent_dmi=8)))
    with pytest.raises(SystemExit) as e:
        run(train_ae.main, stage=True)
    assert str(e.value.code).startswith("train_ae failed: latent_dmi: unknown top-level key")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvc.yaml", "params.yaml"]  # nothing written


# ----------------------------------------------------- each stage, before reading data
STAGES = {"download": download, "preprocess": preprocess, "train_ae": train_ae, "train_vae": train_vae,
          "train_classifier": train_classifier, "evaluate": evaluate, "ood": ood}
BAD = [  # (change, key the message must name, stages that read it)
    ({"latent_dim": 0}, "latent_dim", ["train_ae", "train_vae"]),
    ({"latent_dim": DROP}, "latent_dim", ["train_ae"]),
    ({"train_ae__lr": 0}, "train_ae.lr", ["train_ae"]),
    ({"train_ae__epochs": "ten"}, "train_ae.epochs", ["train_ae"]),
    ({"train_vae__epochs": 0}, "train_vae.epochs", ["train_vae"]),
    ({"train_vae__beta": -1.0}, "train_vae.beta", ["train_vae"]),
    ({"train_classifier__batch_size": 0}, "train_classifier.batch_size", ["train_classifier"]),
    ({"train_classifier__dropout": 1.0}, "train_classifier.dropout", ["train_classifier"]),
    ({"train_classifier__hidden": [32, 0]}, "train_classifier.hidden", ["train_classifier"]),
    ({"train_ae__loss": "bce", "input__normalize": "symmetric"}, "train_ae.loss", ["train_ae"]),
    ({"input__normalize": "symmetric"}, "train_vae.loss", ["train_vae"]),  # params.yaml's VAE loss is bce
    ({"train_ae__loss": "l1"}, "train_ae.loss", ["train_ae"]),
    ({"model__activation": "swish"}, "model.activation", ["train_ae", "train_vae"]),
    ({"model__decoder": "deconv"}, "model.decoder", ["train_ae", "train_vae"]),
    ({"model__widths": []}, "model.widths", ["train_ae", "train_vae"]),
    ({"model__dropout": 0.1}, "model.dropout", ["train_ae", "train_vae"]),  # unknown key
    ({"data__dataset": "cifar"}, "data.dataset", ["preprocess"]),
    ({"data__val_fraction": 0}, "data.val_fraction", ["preprocess"]),
    ({"input__pad": 3}, "input.pad", ["train_ae", "train_vae", "train_classifier"]),
    ({"input__normalize": "minmax"}, "input.normalize", ["train_classifier"]),
    ({"device": "tpu"}, "device", ["train_ae", "train_vae", "train_classifier", "evaluate"]),
    ({"device": DROP}, "device", ["evaluate"]),
    ({"evaluate__projection": "umap"}, "evaluate.projection", ["evaluate"]),
    ({"logreg__C": [0.1, -1]}, "logreg.C", ["train_classifier"]),
    ({"evaluate__arithmetic_pairs": ["sneaker to boot"]}, "evaluate.arithmetic_pairs", ["evaluate"]),
    ({"evaluate__arithmetic_alphas": []}, "evaluate.arithmetic_alphas", ["evaluate"]),
    ({"train_vae__iwae_k": 0}, "train_vae.iwae_k", ["train_vae"]),
    ({"ood__images": 1}, "ood.images", ["ood"]),
]
CASES = [pytest.param(change, key, stage, id=f"{stage}-{'-'.join(change)}")
         for change, key, stages in BAD for stage in stages]


@pytest.mark.parametrize("change, key, stage", CASES)
def test_stage_rejects_bad_param_before_reading_data(change, key, stage, params, tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "no-mirror"))  # never the network
    with pytest.raises(ParamError) as e:  # not a DataError: tmp_path holds no data
        STAGES[stage].main(with_values(params, **change), tmp_path)
    assert_names(e.value, key)
    assert list(tmp_path.iterdir()) == []  # nothing read, nothing written


@pytest.mark.parametrize("stage", ["preprocess", "train_ae", "train_vae", "train_classifier", "evaluate"])
def test_valid_params_reach_the_data(stage, params, tmp_path):
    """The counterpart: with good params the same call gets as far as the missing data."""
    with pytest.raises(PipelineError, match="missing") as e:
        STAGES[stage].main(params, tmp_path)
    assert not isinstance(e.value, ParamError)


def test_error_keys_are_paths_built_once(params):
    """A check inside a dataclass names its field; from_section places it in its section
    once (no data.data.x), and a top-level key stays top-level."""
    with pytest.raises(ParamError) as e:
        conv_config(with_values(params, model__hidden=-1), "train_ae", "mse")
    assert e.value.key == "model.hidden"
    with pytest.raises(ParamError) as e:
        conv_config(with_values(params, latent_dim=0), "train_ae", "mse")
    assert e.value.key == "latent_dim"
    with pytest.raises(ParamError) as e:
        builders.autoencoder(with_values(params, train_ae__loss="bce", input__normalize="symmetric"))
    assert e.value.key == "train_ae.loss" and "symmetric" in str(e.value)
    with pytest.raises(ParamError) as e:
        from_section(DataConfig, with_values(params, data__dataset="cifar"), "data")
    assert e.value.key == "data.dataset" and "fashion_mnist" in str(e.value)  # the choices
    assert str(e.value).startswith("data.dataset: unknown value 'cifar'")


@pytest.mark.parametrize("value", ["8", 2.5, True])
def test_top_level_latent_dim_must_be_an_int(params, value):
    with pytest.raises(ParamError) as e:
        conv_config({**params, "latent_dim": value}, "train_ae", "mse")
    assert_names(e.value, "latent_dim")
