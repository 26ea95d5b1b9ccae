from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from soundlib.cli import main
from soundlib.pictures.featurize import GALLERY_FILES
from soundlib.pictures.variants import register_variant

from .conftest import SR, small_spec, tone, write_csv, write_wav


def test_help_for_every_command(capsys):
    for cmd in ("synth", "variants", "featurize", "gallery", "download", "evaluate", "train", "embed", "predict",
                "notebooks", "sweep", "info"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert "usage: soundlib " + cmd in capsys.readouterr().out


def test_variants_lists_parameters(capsys):
    assert main(["variants"]) == 0
    out = capsys.readouterr().out
    assert "mel_gray" in out and "n_mels=128" in out and "merge: order=" in out
    assert main(["variants", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stacked"]["kind"] == "stacked"


def test_synth_featurize_gallery(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "s"), "--clips-per-class", "2", "--duration", "1", "--quiet"]) == 0
    assert main(["featurize", str(tmp_path / "s"), "--variant", "mel_gray", "--out", str(tmp_path / "p"),
                 "--quiet"]) == 0
    pngs = sorted((tmp_path / "p").rglob("*.png"))
    assert len(pngs) == 20 and pngs[0].parent.name.startswith("fold")
    assert "20 written" in capsys.readouterr().out
    clip = next((tmp_path / "s" / "audio").rglob("*.wav"))
    assert main(["gallery", str(clip), str(tmp_path / "g")]) == 0
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == sorted(GALLERY_FILES)


def test_featurize_folder_with_bad_files(tmp_path, capsys):
    d = tmp_path / "in"
    write_wav(d / "good1.wav", tone(300))
    write_wav(d / "good2.wav", tone(500))
    write_wav(d / "silent.wav", np.zeros(SR, np.float32))
    (d / "empty.wav").write_bytes(b"")
    (d / "text.wav").write_text("hello")
    code = main(["featurize", str(d), "--variant", "mel", "--out", str(tmp_path / "o"), "--quiet", "--jobs", "2"])
    assert code == 1
    cap = capsys.readouterr()
    assert "2 written" in cap.out and "3 failed" in cap.out
    for name, why in (("silent.wav", "silent"), ("empty.wav", "empty file"), ("text.wav", "not a readable")):
        assert f"{name}: {why}" in cap.err
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == ["good1.wav.png", "good2.wav.png"]
    assert not list((tmp_path / "o").glob(".*"))  # no temporary leftovers


def test_bad_dataset_errors_exit_2(tmp_path, capsys):
    assert main(["featurize", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "nothing: dataset path does not exist" in capsys.readouterr().err
    bad = tmp_path / "m.csv"
    bad.write_text("path,label\nmissing.wav,dog\n")
    assert main(["evaluate", str(bad), "--out", str(tmp_path / "e")]) == 2
    assert "m.csv: 1 of 1 listed audio file(s) do not exist" in capsys.readouterr().err


def test_download_offline(tmp_path, capsys, monkeypatch):
    """No server at the address: a one-line error that names the URL and says it is the network."""
    import socket

    from .conftest import ArchiveServer, esc50_archive, serve_dataset

    server = ArchiveServer()
    serve_dataset(monkeypatch, server, "esc50", esc50_archive())
    server.close()  # nothing listens there any more
    with socket.socket() as s:  # (make sure of it)
        assert s.connect_ex(("127.0.0.1", server.httpd.server_address[1])) != 0
    assert main(["download", "esc50", "--data-home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("soundlib download: error: http://127.0.0.1:") and "could not download" in err
    assert "check the network" in err and "Traceback" not in err


def test_evaluate_train_predict(tmp_path, capsys, synth_corpus, tiny_backbone):
    register_variant(small_spec().replace(name="mel32"), overwrite=True)
    common = ["--variant", "mel32", "--backbone", str(tiny_backbone), "--epochs", "2", "--quiet"]
    assert main(["evaluate", str(synth_corpus), "--out", str(tmp_path / "ev"), *common]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("mel32 / frozen: accuracy") and "over 4 folds" in out[-1]
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["variant"] == "mel32"
    assert main(["evaluate", str(synth_corpus), "--out", str(tmp_path / "lk"), "--leaky-split", *common]) == 0
    assert "LEAKY" in capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["train", str(synth_corpus), "--test-fold", "2", "--out", str(tmp_path / "m"), *common]) == 0
    capsys.readouterr()
    wavs = sorted((synth_corpus / "audio" / "fold2").glob("*.wav"))[:2]
    # DIR, what `train --out DIR` wrote, works as well as DIR/model
    for model in (tmp_path / "m", tmp_path / "m" / "model"):
        assert main(["predict", str(model), *map(str, wavs), "--top-k", "2", "--csv", str(tmp_path / "p.csv")]) == 0
        rows = list(csv.DictReader(open(tmp_path / "p.csv")))
        assert len(rows) == 4 and rows[0]["rank"] == "1" and rows[0]["input"] == str(wavs[0])
    assert main(["predict", str(tmp_path / "ev"), *map(str, wavs)]) == 2
    err = capsys.readouterr().err
    assert "not an exported soundlib model (missing saved_model)" in err and "--out DIR` and pass DIR" in err


def test_short_clips_get_one_window_from_embed_to_predict(tmp_path, capsys, tiny_backbone):
    """0.5-s clips with a built-in-style variant (duration "fit"): every command chooses the same 0.5-s
    window, so `embed` fills what `evaluate` reads, and the exported model keeps the number."""
    register_variant(small_spec().replace(name="mel32"), overwrite=True)
    rows = []
    for k in range(12):
        path = write_wav(tmp_path / "d" / f"{k}.wav", tone(300 + 500 * (k % 2), seconds=0.5, seed=k))
        rows.append([path.name, "ab"[k % 2], 1 + (k // 2) % 2, f"r{k}"])
    data = write_csv(tmp_path / "d" / "m.csv", ["path", "label", "fold", "group"], rows)
    common = ["--variant", "mel32", "--backbone", str(tiny_backbone), "--quiet"]
    assert main(["variants"]) == 0 and "duration=fit: the clips' length" in capsys.readouterr().out
    assert main(["embed", str(data), *common]) == 0
    said = capsys.readouterr().out
    assert "embed mel32 (0.5-s window) with " in said and ": 0 from cache, 12 computed" in said
    assert main(["evaluate", str(data), "--out", str(tmp_path / "ev"), *common]) == 0
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert res["duration"]["seconds"] == res["feature_spec"]["duration"] == 0.5
    assert (res["features"]["embed_hits"], res["features"]["embed_computed"]) == (12, 0)
    assert main(["train", str(data), "--test-fold", "1", "--out", str(tmp_path / "m"), *common]) == 0
    assert json.loads((tmp_path / "m" / "model" / "feature_spec.json").read_text())["duration"] == 0.5
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m"), str(tmp_path / "d" / "0.wav")]) == 0
    assert "windows" not in capsys.readouterr().out  # one window: the clip fits the model's
    assert main(["featurize", str(data), "--variant", "mel32", "--out", str(tmp_path / "p"), "--quiet"]) == 0
    assert "featurize mel32 (0.5-s window): 12 written" in capsys.readouterr().out


#: TensorFlow's start-up lines that must not reach a user by default.
TF_NOISE = ("oneDNN custom operations", "Could not find cuda drivers", "failed call to cuInit",
            "absl::InitializeLog", "This TensorFlow binary is optimized")


@pytest.mark.slow
def test_cli_is_quiet_unless_verbose(tmp_path, synth_corpus, tiny_backbone):
    """A real `soundlib predict` process imports TensorFlow: nothing of its start-up noise on stderr."""
    spec = small_spec().replace(name="mel32")
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.models.train import train_fold
    from soundlib.audio.loaders import load_dataset
    from soundlib.methods.train import TrainConfig

    train_fold(load_dataset(synth_corpus), test_fold=2, out_dir=tmp_path / "m", progress=False,
               config=EvalConfig(method="frozen", spec=spec, backbone=str(tiny_backbone), train=TrainConfig(epochs=2)))
    wav = str(sorted((synth_corpus / "audio" / "fold2").glob("*.wav"))[0])
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "SOUNDLIB_VERBOSE")}
    lite = subprocess.run([sys.executable, "-m", "soundlib.cli", "predict", str(tmp_path / "m"), wav, "--top-k", "1"],
                          capture_output=True, text=True, env=env)  # the LiteRT copy: its delegate notice dropped too
    assert lite.returncode == 0 and lite.stdout.startswith(wav) and not lite.stderr.strip(), lite.stderr
    env["SOUNDLIB_MODEL_RUNTIME"] = "tf"  # the SavedModel: TensorFlow is imported
    quiet = subprocess.run([sys.executable, "-m", "soundlib.cli", "predict", str(tmp_path / "m"), wav, "--top-k", "1"],
                           capture_output=True, text=True, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith(wav) and "1. " in quiet.stdout
    assert not [w for w in TF_NOISE if w in quiet.stderr], quiet.stderr
    loud = subprocess.run([sys.executable, "-m", "soundlib.cli", "predict", str(tmp_path / "m"), wav, "--verbose"],
                          capture_output=True, text=True, env=env)
    assert loud.returncode == 0, loud.stderr
    assert [w for w in TF_NOISE if w in loud.stderr], "--verbose should keep TensorFlow's start-up messages"


def test_notebooks_are_copied_out_and_edits_kept(tmp_path, capsys):
    from soundlib.lab.notebook import NOTEBOOKS, notebooks_dir

    assert main(["notebooks", str(tmp_path / "nb")]) == 0
    for name in NOTEBOOKS:
        assert (tmp_path / "nb" / name).read_bytes() == (notebooks_dir() / name).read_bytes()
    (tmp_path / "nb" / "train.ipynb").write_text("my edits")
    capsys.readouterr()
    assert main(["notebooks", str(tmp_path / "nb")]) == 0
    assert "train.ipynb already there, kept" in capsys.readouterr().out
    assert (tmp_path / "nb" / "train.ipynb").read_text() == "my edits"
    assert main(["notebooks", str(tmp_path / "nb"), "--force"]) == 0
    assert (tmp_path / "nb" / "train.ipynb").read_bytes() == (notebooks_dir() / "train.ipynb").read_bytes()


def test_console_script_starts_without_tensorflow():
    out = subprocess.run([sys.executable, "-m", "soundlib.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("soundlib ")


def test_flag_defaults_are_the_config_defaults():
    """Every default comes from the configuration dataclass the flags fill (one place for defaults)."""
    from soundlib.cli import build_parser, embed_config_from_args, eval_config_from_args, train_config_from_args
    from soundlib.embedding.embed import EmbedConfig
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.audio.synth import SynthConfig
    from soundlib.methods.train import TrainConfig

    parser = build_parser()
    for cmd in (["evaluate", "d", "--out", "o"], ["train", "d", "--out", "o", "--test-fold", "1"]):
        args = parser.parse_args(cmd)
        assert train_config_from_args(args) == TrainConfig()
        assert eval_config_from_args(args) == EvalConfig()
        assert embed_config_from_args(args) == EmbedConfig()
    args = parser.parse_args(["embed", "d"])
    assert embed_config_from_args(args) == EmbedConfig() and args.variant == EvalConfig().spec.name
    args = parser.parse_args(["synth", "out"])
    assert (args.clips_per_class, args.seed, args.duration) == (SynthConfig().clips_per_class, SynthConfig().seed,
                                                               SynthConfig().duration)


@pytest.mark.parametrize("flags, words", [
    (["--learning-rate", "nan"], "learning_rate"), (["--l2", "inf"], "l2"), (["--dropout", "1.5"], "dropout"),
    (["--variant", "nope"], "unknown feature variant 'nope'"),
])
def test_bad_training_flags_are_one_line_errors(tmp_path, capsys, synth_corpus, flags, words):
    assert main(["evaluate", str(synth_corpus), "--out", str(tmp_path / "o"), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("soundlib evaluate: error:") and words in err and "Traceback" not in err


def test_options_a_method_ignores_are_warned_about(tmp_path, capsys):
    """The legacy (0.1) flags set only the softmax head: any other method warns once, naming them."""
    import warnings

    from soundlib.cli import build_parser, eval_config_from_args
    from soundlib.errors import SoundlibWarning

    # (the dataset is missing: the command stops with exit 2 after the flags are read)
    assert main(["evaluate", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--epochs", "5",
                 "--learning-rate", "0.01"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("soundlib evaluate: warning: --learning-rate, --epochs are ignored by method auto")
    assert "head=softmax" in err[0] and len(err) == 2 and "error" in err[1]
    parser = build_parser()

    def warned(*flags):
        with warnings.catch_warnings(record=True) as log:
            warnings.simplefilter("always")
            eval_config_from_args(parser.parse_args(["train", "d", "--out", "o", "--test-fold", "1", *flags]))
        return [str(w.message) for w in log if issubclass(w.category, SoundlibWarning)]

    assert warned() == [] and warned("--seed", "3", "--validation-split", "0.3") == []  # every method's flags
    assert warned("--epochs", "5", "--method", "frozen", "--method-option", "head=softmax") == []
    assert warned("--method", "fusion", "--method-option", "members=[mfcc, {method: frozen, head: softmax}]",
                  "--dropout", "0.5") == []
    (msg,) = warned("--method", "mfcc", "--fine-tune", "--random-crop", "10")
    assert msg.startswith("--fine-tune, --random-crop are ignored by method mfcc")


def test_help_groups_legacy_flags_and_shows_only_useful_defaults(capsys):
    for cmd in ("synth", "variants", "featurize", "download", "evaluate", "train", "embed", "predict", "sweep"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = capsys.readouterr().out
        assert "(default: False)" not in out and "(default: None)" not in out and "(default: [])" not in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    legacy = [line.split()[0] for line in out[out.index("legacy (soundlib 0.1):"):].splitlines()
              if line.startswith("  --")]
    assert {"--learning-rate", "--epochs", "--steps", "--dropout", "--l2", "--fine-tune",
            "--random-crop"} <= set(legacy)
    assert not {"--validation-split", "--seed", "--method", "--test-fold"} & set(legacy)
    assert "--epochs EPOCHS       passes over the training clips (default: 60)" in out


def test_download_no_validate_help_agrees_with_the_readme(capsys):
    from pathlib import Path

    with pytest.raises(SystemExit):
        main(["download", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    assert "--no-validate skip the final check that every file the metadata lists is there" in help_text
    assert "MD5 is always checked" in help_text and "checksum" not in help_text
    assert "`--no-validate` skips the final check that every file the metadata lists is there" in readme
    assert "(the MD5 is always checked)" in readme


def test_variants_show_every_field(capsys):
    from soundlib.pictures.variants import VARIANTS

    assert main(["variants", "--json"]) == 0
    specs = json.loads(capsys.readouterr().out)
    for name, spec in VARIANTS.items():
        assert set(specs[name]) == set(dataclasses.asdict(spec)), name  # pad and window_hop included
    assert specs["mel"]["pad"] == "end" and specs["mel"]["window_hop"] is None
    assert main(["variants"]) == 0
    assert "pad=end, window_hop=None" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["variants"], ["variants", "--json"]])
def test_a_closed_pipe_ends_a_command_quietly(args):
    """`soundlib variants | head -1`: the reader goes away; no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "soundlib.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command writes anything
    err = proc.stderr.read().decode()
    assert proc.wait() in (0, 141) and err == "", err
