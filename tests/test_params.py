"""params.yaml validation: every bad value fails at the stage boundary, before any data
is read, with a ParamError whose message names the qualified key."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import pytest

from stages import download, preprocess, train_ae, train_classifier, train_vae
from stages.core.data import DataConfig, PreprocessConfig
from stages.core.models import conv_config
from stages.core.params import ParamError, from_section
from stages.train_ae import AEConfig
from stages.core.training import ClassifierConfig


def assert_names(error: ParamError, key: str) -> None:
    """The message names ``key`` exactly: not missing, not double-qualified (data.data.x)."""
    msg = str(error)
    assert re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", msg), f"{key!r} not named in: {msg}"


def with_values(params: dict, **changes) -> dict:
    """A copy of params with ``section__key=value`` (or top-level ``key=value``) changed."""
    p = copy.deepcopy(params)
    for dotted, value in changes.items():
        section, _, key = dotted.rpartition("__")
        (p[section] if section else p)[key] = value
    return p


# ----------------------------------------------------------------------- from_section
def test_unknown_key_names_it(params):
    section = dict(params["train_ae"], lrate=0.01)
    with pytest.raises(ParamError) as e:
        from_section(AEConfig, section, "train_ae")
    assert_names(e.value, "train_ae.lrate")
    assert re.search(r"known keys of 'train_ae': .*\blr\b", str(e.value))  # what it could have meant


def test_unknown_key_does_not_list_keys_from_outside_the_section(params):
    with pytest.raises(ParamError) as e:
        from_section(AEConfig, {"lrate": 0.01}, "train_ae", normalize="unit")
    known = str(e.value).split("known keys", 1)[1]
    assert "lr" in known and "normalize" not in known  # normalize comes from preprocess


@pytest.mark.parametrize("key, value", [
    ("epochs", "ten"), ("epochs", 2.5), ("epochs", True), ("lr", "fast"), ("lr", None),
    ("optimizer", 3), ("seed", "0"),
])
def test_wrong_type_names_key(key, value):
    with pytest.raises(ParamError, match="must be") as e:
        from_section(AEConfig, {key: value}, "train_ae")
    assert_names(e.value, f"train_ae.{key}")


@pytest.mark.parametrize("value, expected", [("1e-3", 1e-3), ("2.5E-4", 2.5e-4), (1, 1.0), (0.01, 0.01)])
def test_floats_as_strings_accepted(value, expected):
    cfg = from_section(AEConfig, {"lr": value}, "train_ae")
    assert type(cfg.lr) is float and cfg.lr == expected


def test_lists_become_tuples():
    cfg = from_section(ClassifierConfig, {"hidden": [32, 16]}, "train_classifier")
    assert cfg.hidden == (32, 16)
    with pytest.raises(ParamError) as e:
        from_section(ClassifierConfig, {"hidden": 32}, "train_classifier")
    assert_names(e.value, "train_classifier.hidden")
    with pytest.raises(ParamError) as e:
        from_section(ClassifierConfig, {"hidden": [32, "wide"]}, "train_classifier")
    assert_names(e.value, "train_classifier.hidden[1]")


def test_missing_required_key_names_it():
    @dataclass(frozen=True)
    class Needs:
        size: int

    with pytest.raises(ParamError) as e:
        from_section(Needs, {}, "section")
    assert_names(e.value, "section.size")
    assert from_section(Needs, {"size": 3}, "section").size == 3


def test_real_params_are_valid(params):
    """The shrunk params.yaml builds every config (else the tests below prove nothing)."""
    conv = conv_config(params)
    assert (conv.latent_dim, conv.widths, conv.hidden) == (params["latent_dim"], (4, 8), 16)
    from_section(DataConfig, params["data"], "data")
    from_section(PreprocessConfig, params["preprocess"], "preprocess")
    from_section(AEConfig, params["train_ae"], "train_ae", normalize=conv.normalize)
    from_section(train_vae.VAEConfig, params["train_vae"], "train_vae", normalize=conv.normalize)
    assert from_section(ClassifierConfig, params["train_classifier"], "train_classifier").hidden == (32, 16)


# ----------------------------------------------------- each stage, before reading data
STAGES = {"download": download, "preprocess": preprocess, "train_ae": train_ae, "train_vae": train_vae,
          "train_classifier": train_classifier}
BAD = [  # (change, key the message must name, stages that read it)
    ({"latent_dim": 0}, "latent_dim", ["train_ae", "train_vae"]),
    ({"train_ae__lr": 0}, "train_ae.lr", ["train_ae"]),
    ({"train_ae__epochs": "ten"}, "train_ae.epochs", ["train_ae"]),
    ({"train_vae__epochs": 0}, "train_vae.epochs", ["train_vae"]),
    ({"train_vae__beta": -1.0}, "train_vae.beta", ["train_vae"]),
    ({"train_classifier__batch_size": 0}, "train_classifier.batch_size", ["train_classifier"]),
    ({"train_classifier__dropout": 1.0}, "train_classifier.dropout", ["train_classifier"]),
    ({"train_classifier__hidden": [32, 0]}, "train_classifier.hidden", ["train_classifier"]),
    ({"train_ae__loss": "bce", "preprocess__normalize": "symmetric"}, "train_ae.loss", ["train_ae"]),
    ({"preprocess__normalize": "symmetric"}, "train_vae.loss", ["train_vae"]),  # its default loss is bce
    ({"train_ae__loss": "l1"}, "train_ae.loss", ["train_ae"]),
    ({"model__activation": "swish"}, "model.activation", ["train_ae", "train_vae"]),
    ({"model__decoder": "deconv"}, "model.decoder", ["train_ae", "train_vae"]),
    ({"model__widths": []}, "model.widths", ["train_ae", "train_vae"]),
    ({"model__dropout": 0.1}, "model.dropout", ["train_ae", "train_vae"]),  # unknown key
    ({"data__dataset": "cifar"}, "data.dataset", ["download", "preprocess"]),
    ({"data__val_fraction": 0}, "data.val_fraction", ["download", "preprocess"]),
    ({"preprocess__pad": 3}, "preprocess.pad", ["preprocess", "train_ae", "train_vae", "train_classifier"]),
    ({"preprocess__normalize": "minmax"}, "preprocess.normalize", ["preprocess", "train_classifier"]),
    ({"device": "tpu"}, "device", ["train_ae", "train_vae", "train_classifier"]),
]
CASES = [pytest.param(change, key, stage, id=f"{stage}-{'-'.join(change)}-{list(change.values())[-1]}")
         for change, key, stages in BAD for stage in stages]


@pytest.mark.parametrize("change, key, stage", CASES)
def test_stage_rejects_bad_param_before_reading_data(change, key, stage, params, tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_MIRROR", str(tmp_path / "no-mirror"))  # never the network
    with pytest.raises(ParamError) as e:  # not a DataError: tmp_path holds no data
        STAGES[stage].main(with_values(params, **change), tmp_path)
    assert_names(e.value, key)
    assert list(tmp_path.iterdir()) == []  # nothing read, nothing written


@pytest.mark.parametrize("stage", ["preprocess", "train_ae", "train_vae", "train_classifier"])
def test_valid_params_reach_the_data(stage, params, tmp_path):
    """The counterpart: with good params the same call gets as far as the missing data."""
    from stages.core.params import PipelineError

    with pytest.raises(PipelineError, match="missing"):
        STAGES[stage].main(params, tmp_path)


def test_config_builders_qualify_keys(params):
    with pytest.raises(ParamError) as e:
        conv_config(with_values(params, model__hidden=-1))
    assert_names(e.value, "model.hidden")
    with pytest.raises(ParamError) as e:
        from_section(AEConfig, {"loss": "bce"}, "train_ae", normalize="symmetric")
    assert_names(e.value, "train_ae.loss")
    assert "symmetric" in str(e.value)
    with pytest.raises(ParamError) as e:
        from_section(DataConfig, {"dataset": "cifar"}, "data")
    assert_names(e.value, "data.dataset")
    assert "fashion_mnist" in str(e.value)  # the choices
    assert e.value.key == "data.dataset"


@pytest.mark.parametrize("value", ["8", 2.5, True])
def test_top_level_latent_dim_must_be_an_int(params, value):
    with pytest.raises(ParamError) as e:
        conv_config({**params, "latent_dim": value})
    assert_names(e.value, "latent_dim")


def test_evaluate_without_models_names_the_missing_file(params, tmp_path):
    from stages import evaluate
    from stages.core.params import PipelineError

    with pytest.raises(PipelineError, match=r"data/processed/train.npz is missing"):
        evaluate.main(params, tmp_path)


def test_logreg_section_has_no_code_defaults():
    """params.yaml is the one place its defaults live: a missing key is an error naming it."""
    from stages.core.evaluation import LogregConfig

    with pytest.raises(ParamError) as e:
        from_section(LogregConfig, {"C": [0.1], "max_iter": 10}, "logreg")
    assert_names(e.value, "logreg.tol")
    with pytest.raises(ParamError) as e:
        from_section(LogregConfig, {"C": [0.1, -1], "max_iter": 10, "tol": 1e-3}, "logreg")
    assert_names(e.value, "logreg.C")
