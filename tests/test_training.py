"""Training on synthetic reviews: learns, is deterministic, writes a complete artifact, fails clearly."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from fixtures_local import write_tiny_imdb

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("NLTK_DATA", str(REPO.parent / "shared" / "nltk_data"))

from model import artifact, train  # noqa: E402
from model.data import load  # noqa: E402
from model.hyperparameters import preset  # noqa: E402
from model.metrics import LOGGED_METRICS, metric_definitions  # noqa: E402
from model.training_loop import fit  # noqa: E402

TINY = {"workers": "1"}


@pytest.fixture(scope="module")
def tiny_tgz(tiny_imdb_tgz) -> Path:
    return tiny_imdb_tgz


@pytest.fixture(scope="module")
def trained(tiny_training) -> tuple[Path, dict]:
    """The session's one tiny training run (fixtures_local): the real `train` in a job layout."""
    return tiny_training.model_dir, tiny_training.metrics


def test_learns_a_separable_signal(trained):
    _, metrics = trained
    assert metrics["test"]["accuracy"] >= 0.9
    assert metrics["validation"]["accuracy"] >= 0.9
    assert 1 <= metrics["best_epoch"] <= len(metrics["history"])


def test_artifact_is_complete_and_holds_no_code(trained):
    model_dir, _ = trained
    names = {p.name for p in model_dir.iterdir()}
    assert {"model.safetensors", "vocab.json", "config.json", "metrics.json", "training_curves.png",
            "confusion_matrix.png"} <= names
    assert not [n for n in names if n.endswith((".pkl", ".pt", ".pth", ".tmp"))]
    config = json.loads((model_dir / "config.json").read_text())
    assert config["preprocessing"]["mode"] == "negation"
    assert "the" in config["preprocessing"]["stopwords"]
    assert {"torch", "nltk", "python"} <= set(config["versions"])
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"accuracy", "precision", "recall", "f1", "confusion_matrix"}
    assert (model_dir / "training_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_artifact_round_trip_predicts_the_same(trained):
    model_dir, _ = trained
    first, second = artifact.load(model_dir), artifact.load(model_dir)
    from model.network import pad_batch
    ids, lengths = pad_batch([first.encode("a wonderful superb film"), first.encode("awful boring mess")])
    p1 = first.model.predict_proba(ids, lengths)
    assert p1.tolist() == second.model.predict_proba(ids, lengths).tolist()
    assert p1[0] > 0.5 > p1[1]


def test_same_seed_same_model(tiny_tgz, tmp_path):
    hp = preset("tiny").from_strings({**TINY, "epochs": "1"}, base=preset("tiny"))
    ds = load(tiny_tgz)
    fit(ds, hp, tmp_path / "a", progress=False, evaluate_test=False)
    fit(ds, hp, tmp_path / "b", progress=False, evaluate_test=False)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_interrupted_save_leaves_no_complete_model(trained, tmp_path, monkeypatch):
    model_dir, _ = trained
    loaded = artifact.load(model_dir)
    target = tmp_path / "m"
    artifact.save(target, loaded.model, loaded.vocab, loaded.preprocessor, loaded.hyperparameters)
    assert artifact.is_complete(target)

    def crash(path, obj):
        raise KeyboardInterrupt

    monkeypatch.setattr(artifact, "write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        artifact.save(target, loaded.model, loaded.vocab, loaded.preprocessor, loaded.hyperparameters)
    assert not artifact.is_complete(target)
    with pytest.raises(artifact.ArtifactError, match="config.json is missing"):
        artifact.load(target)


def test_corrupt_weights_fail_fast_with_the_file_named(trained, tmp_path):
    import shutil
    model_dir, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    (copy / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(artifact.ArtifactError, match="model.safetensors"):
        artifact.load(copy)


# ----------------------------------------------------------------------------- the `train` contract

def sagemaker_dirs(base: Path, hyperparameters: dict | None, archive: Path | None) -> None:
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "data" / "train").mkdir(parents=True)
    if hyperparameters is not None:
        (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    if archive is not None:
        (base / "input" / "data" / "train" / archive.name).write_bytes(archive.read_bytes())


@pytest.fixture
def job_env(monkeypatch, tmp_path):
    for var in ("SM_CHANNEL_TRAIN", "SM_MODEL_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    return tmp_path


def test_train_follows_the_sagemaker_contract(tiny_training):
    job = tiny_training.job
    assert artifact.is_complete(job / "model")
    assert not (job / "output" / "failure").exists()
    out = tiny_training.stdout
    # Every metric SageMaker's definitions scrape, from this real log; its last value (SageMaker's final
    # one) is the kept model's figure in metrics.json (train:loss: the last epoch's).
    saved = tiny_training.metrics
    final = {d["Name"]: re.findall(d["Regex"], out) for d in metric_definitions()}
    assert set(final) == set(LOGGED_METRICS) and all(final.values()), final
    for name, values in final.items():
        split, key = name.split(":")
        expected = saved["history"][-1]["train_loss"] if name == "train:loss" else saved[split][key]
        assert float(values[-1]) == pytest.approx(expected, abs=5e-5), name
    # Then, for a person: the figure, rounded as the docs round it, where the files are, how long.
    summary = out[out.index("test:accuracy="):].split("\n", 1)[1]
    accuracy = saved["test"]["accuracy"]
    assert f"Test accuracy {accuracy * 100:.1f}% on 80 test reviews" in summary
    assert "Trained in " in summary and " s." in summary
    assert f"Model    {job / 'model'}" in summary
    assert str(job / "model" / "metrics.json") in summary and "training_curves.png" in summary


@pytest.mark.parametrize("hyperparameters, archive, reason", [
    ({"preset": "tiny", "epochs": "-1"}, "good", "epochs=-1"),
    ({"preset": "tiny", "learning_rte": "0.1"}, "good", "unknown hyperparameter 'learning_rte'"),
    ({"preset": "tiny"}, None, "holds neither an aclImdb/ folder nor a .tar.gz"),
    ({"preset": "tiny"}, "corrupt", "not a readable tar.gz"),
    ({"preset": "tiny"}, "no-test", "no reviews under aclImdb/test"),
])
def test_train_failures_leave_a_reason(job_env, tiny_tgz, tmp_path_factory, capsys, hyperparameters, archive, reason):
    src = None
    if archive == "good":
        src = tiny_tgz
    elif archive == "corrupt":
        src = tmp_path_factory.mktemp("bad") / "imdb.tar.gz"
        src.write_bytes(tiny_tgz.read_bytes()[:300])
    elif archive == "no-test":
        src = write_tiny_imdb(tmp_path_factory.mktemp("notest") / "imdb.tar.gz", per_class={"train": 160})
    sagemaker_dirs(job_env, hyperparameters, src)
    assert train.main(["--quiet"]) == 1
    failure = (job_env / "output" / "failure").read_text()
    assert reason in failure
    assert "Traceback" not in failure
    assert not artifact.is_complete(job_env / "model")


@pytest.mark.parametrize("raised, reason", [
    (RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed."),
     "RuntimeError: DataLoader worker (pid 4242) is killed by signal: Killed."),
    (MemoryError(), "MemoryError"),
    (KeyboardInterrupt(), "training interrupted"),
])
def test_an_unexpected_error_still_leaves_a_reason(job_env, tiny_tgz, capsys, monkeypatch, raised, reason):
    """Whatever goes wrong inside training, SageMaker gets a FailureReason (its type and message, no
    traceback) and the log gets the traceback, which a person needs to find the cause."""
    from model import training_loop

    def fail(*args, **kwargs):
        raise raised

    monkeypatch.setattr(training_loop, "fit", fail)
    sagemaker_dirs(job_env, {"preset": "tiny", "workers": "1"}, tiny_tgz)
    assert train.main(["--quiet"]) == 1
    assert (job_env / "output" / "failure").read_text() == reason
    err = capsys.readouterr().err
    assert "train: error: " in err
    if isinstance(raised, Exception):
        assert "Traceback (most recent call last)" in err and "in fail" in err
    assert not artifact.is_complete(job_env / "model")


@pytest.mark.parametrize("cause", ["known", "unexpected"])
def test_a_long_failure_reason_is_cut_to_what_sagemaker_shows(job_env, tiny_tgz, monkeypatch, capsys, cause):
    """SageMaker keeps the first 1024 characters of output/failure as FailureReason (and a longer one can
    fail the DescribeTrainingJob call that reports it); the start, which names the cause, is kept."""
    long_name = "x" * 3000
    hyperparameters = {"preset": "tiny", "workers": "1"}
    if cause == "known":
        hyperparameters[long_name] = "1"
        start = f"HyperparameterError: unknown hyperparameter '{'x' * 100}"
    else:
        from model import training_loop

        def fail(*args, **kwargs):
            raise OSError(f"cannot write {long_name}")

        monkeypatch.setattr(training_loop, "fit", fail)
        start = "OSError: cannot write xxx"
    sagemaker_dirs(job_env, hyperparameters, tiny_tgz)
    assert train.main(["--quiet"]) == 1
    failure = (job_env / "output" / "failure").read_text()
    assert len(failure) == 1024 and failure.startswith(start)
    assert long_name in capsys.readouterr().err  # the whole of it in the log


def test_flags_override_the_job_paths(job_env, tiny_tgz, tmp_path, capsys):
    out = tmp_path / "elsewhere"
    assert train.main(["--data", str(tiny_tgz), "--model-dir", str(out), "--preset", "tiny",
                       "--set", "epochs=1", "--set", "workers=1", "--no-test", "--quiet"]) == 0
    assert artifact.is_complete(out)
    assert "test" not in json.loads((out / "metrics.json").read_text())
    assert "(test split not scored; validation " in capsys.readouterr().out


@pytest.mark.parametrize("seconds, shown", [(48.4, "48 s"), (91, "1 min 31 s"), (3725, "1 h 02 min")])
def test_durations_read_as_a_person_says_them(seconds, shown):
    assert train.duration(seconds) == shown


def test_evaluate_scores_an_artifact(trained, tiny_tgz, tmp_path, capsys):
    from model import evaluate
    model_dir, metrics = trained
    assert evaluate.main(["--model-dir", str(model_dir), "--data", str(tiny_tgz), "--quiet",
                          "--output", str(tmp_path / "eval.json")]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["n"] == 80
    assert result["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert "test:accuracy=" in capsys.readouterr().out
    assert evaluate.main(["--model-dir", str(tmp_path / "nothing"), "--data", str(tiny_tgz)]) == 1


def test_default_recipe_pretrains_on_unlabelled_reviews_and_learns(tmp_path, caplog):
    data = write_tiny_imdb(tmp_path / "with_unsup.tar.gz", unlabelled=200)
    hp = preset("tiny").from_strings({**TINY, "embedding_init": "ppmi-svd", "word_dropout": "0.1",
                                      "pooling": "last+max+mean", "lr_schedule": "linear", "epochs": "4"},
                                     base=preset("tiny"))
    dataset = load(data, unlabelled=True)
    assert len(dataset.unlabelled) == 200
    with caplog.at_level("INFO", logger="model.train"):
        metrics = fit(dataset, hp, tmp_path / "model", progress=False)
    # vectors from the training split (80% of 320) and the 200 unlabelled reviews, never validation/test
    assert any("from 456 texts" in r.getMessage() for r in caplog.records)
    assert metrics["test"]["accuracy"] >= 0.9
    loaded = artifact.load(tmp_path / "model")
    assert loaded.model.pooling == "last+max+mean"
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["hyperparameters"]["embedding_init"] == "ppmi-svd"
