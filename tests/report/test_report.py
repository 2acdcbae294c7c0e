"""The HTML report on a tiny run: every figure, only existing files linked, the same numbers everywhere."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from PIL import Image

from digits_core import contract
from digits_core.cli_support import run_fire
from digits_core.errors import DigitsError
from digits_report.refusal import floored_tradeoff
from digits_report.report import write_report

from helpers import assert_disk_full_line, evaluate

pytestmark = pytest.mark.slow  # most tests write a report: a page and its figures, drawn by matplotlib


@pytest.fixture(scope="module")
def report(report_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report"
    i = report_inputs
    index = write_report(i["curated"], i["train"], i["model"], i["eval"], i["timings"], out)
    return {"index": index, "dir": out, "json": json.loads((out / "report.json").read_text())}


def test_page_and_every_figure_exist_and_are_not_blank(report):
    names = set(report["json"]["figures"].values())
    assert {
        "counts.png",
        "samples.png",
        "training.png",
        "confusion_eval.png",
        "confusion_test.png",
        "refusal_tradeoff.png",
    } <= names
    assert "least_confident.png" in names
    for name in names:
        with Image.open(report["dir"] / name) as image:
            rgb = image.convert("RGB")
        assert np.asarray(rgb).std() > 10, name
        assert rgb.getcolors(maxcolors=20) is None, name  # more than 20 colours


def test_page_references_only_files_that_exist(report):
    page = report["index"].read_text()
    refs = re.findall(r"(?:src|href)=['\"]([^'\"]+)['\"]", page)
    assert len(refs) >= 6
    for ref in refs:
        assert not ref.startswith(("http:", "https:", "//")), ref
        assert (report["dir"] / ref).is_file(), ref


def test_numbers_agree_between_page_json_and_evaluation(report, report_inputs):
    page = report["index"].read_text()
    for split in ("eval", "test"):
        evaluation = json.loads((report_inputs["eval"] / f"{split}.json").read_text())
        in_report = report["json"]["evaluation"][split]
        for key in ("n", "accuracy", "macro_f1", "per_class", "confusion_matrix"):
            assert in_report[key] == evaluation[key]
        assert f"<td>{evaluation['accuracy']:.4f}</td>" in page
        assert f"<td>{evaluation['macro_f1']:.4f}</td>" in page
        for digit, c in evaluation["per_class"].items():
            row = f"<td>digit {digit}</td><td>{c['precision']:.4f}</td><td>{c['recall']:.4f}</td>"
            row += f"<td>{c['f1']:.4f}</td>"
            assert row in page
        wrong = [
            {k: p[k] for k in ("index", "label", "prediction", "probs")}
            for p in evaluation["predictions"]
            if p["label"] != p["prediction"]
        ]
        if split == "eval":
            assert report["json"]["misclassified_eval"] == wrong
    assert report["json"]["timings_seconds"] == {
        "download": None,
        "curate": None,
        "handwriting": None,
        "suite": None,
        "train": 12.5,
        "export": None,
        "evaluate": None,
        "evaluate-handwriting": None,
        "robustness": None,
    }
    assert "<th>train</th><td>12.5 s</td>" in page
    assert "<th>download</th><td>not recorded</td>" in page
    assert report["json"]["training"]["best_epoch"] == 1


def test_missing_inputs_name_the_file_and_the_target(report_inputs, tmp_path):
    i = report_inputs
    with pytest.raises(
        DigitsError, match=f"^{tmp_path / 'summary.json'} is missing: run `make train` first$"
    ):
        write_report(i["curated"], tmp_path, i["model"], i["eval"], i["timings"], tmp_path / "r")
    with pytest.raises(
        DigitsError, match=f"^{tmp_path / 'eval.json'} is missing: run `make evaluate` first$"
    ):
        write_report(i["curated"], i["train"], i["model"], tmp_path, i["timings"], tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_command_line_writes_the_report_or_names_what_is_missing(report_inputs, tmp_path):
    out = tmp_path / "report"

    def command(**changed):
        flags = {
            "curated-dir": report_inputs["curated"],
            "train-dir": report_inputs["train"],
            "model": report_inputs["model"],
            "eval-dir": report_inputs["eval"],
            "timings-dir": report_inputs["timings"],
            "output-dir": out,
        } | changed
        argv = [a for flag, value in flags.items() for a in (f"--{flag}", str(value))]
        return subprocess.run([sys.executable, "-m", "digits_report", *argv], capture_output=True, text=True)

    done = command()
    assert (done.returncode, done.stdout, done.stderr) == (0, f"report written to {out / 'index.html'}\n", "")
    assert json.loads((out / "report.json").read_text())["evaluation"]["eval"]["n"] == 72
    done = command(model=tmp_path / "none.onnx")
    assert (done.returncode, done.stdout) == (1, "")
    assert (
        done.stderr == f"digits-report: error: {tmp_path / 'none.onnx'} is missing: run `make train` first\n"
    )
    done = command(output=out)
    assert (done.returncode, done.stdout) == (2, "")
    assert (
        done.stderr
        == "digits-report: error: digits-report has no option --output: see `digits-report --help`\n"
    )


def test_refusal_section_shows_the_evaluated_shares(report, report_inputs, refusing_model):
    _, rule = refusing_model
    page = report["index"].read_text()
    section = report["json"]["refusal"]
    assert section["rule"] == {
        "score": "energy",
        "threshold": rule.threshold,
        "known_accept_rate": 0.9,
        "chosen_on": "val",
        "min_probability": 0.0,
    }
    labels = {"eval": "eval split", "test": "MNIST test 0, 5, 8", "other": "MNIST test, other digits"}
    for split, label in labels.items():
        evaluated = json.loads((report_inputs["eval"] / f"{split}.json").read_text())["refusal"]
        assert section["refused"][split] == {k: evaluated[k] for k in ("n", "refused", "share_refused")}
        row = f"<tr><td>{label}</td><td>{evaluated['n']}</td><td>{evaluated['refused']}</td>"
        assert row + f"<td>{evaluated['share_refused']:.4f}</td></tr>" in page
        if split == "other":
            assert section["other_per_digit"] == evaluated["per_digit"]
            assert list(evaluated["per_digit"]) == ["1", "2", "3", "4", "6", "7", "9"]
    other = section["refused"]["other"]
    assert other["n"] == 7154
    assert f"It refuses\n<b>{other['share_refused']:.4f}</b> of the 7154 MNIST test" in page
    assert f"it refuses {other['share_refused']:.1%} of the other MNIST test digits, not all" in page


def test_the_trade_off_curve_keeps_the_rules_floor_so_its_point_is_on_the_curve():
    def predictions(scores, top):
        return [{"score": s, "probs": [t, 1 - t]} for s, t in zip(scores, top, strict=True)]

    known = predictions([1.0, 2.0, 3.0, 4.0], [0.9, 0.5, 0.95, 0.99])  # the second is under the floor
    other = predictions([0.5, 2.5, 3.5], [0.9, 0.9, 0.55])  # and the third
    curve = floored_tradeoff(known, other, 0.6)
    assert curve["threshold"].tolist() == [0.5, 1.0, 2.5, 3.0, 4.0, np.inf]
    at = curve["threshold"].tolist().index(2.5)  # a rule with threshold 2.5 and floor 0.6:
    assert (curve["known_accepted"][at], curve["other_refused"][at]) == (0.5, 2 / 3)  # its point
    assert curve["known_accepted"].max() == 0.75  # no threshold accepts what the floor refuses
    assert curve["other_refused"].min() == 1 / 3
    unfloored = floored_tradeoff(known, other, 0.0)
    assert unfloored["known_accepted"].max() == 1.0


def test_refusal_section_of_a_model_without_a_rule(model_path, small_curated, tmp_path):
    from digits_report.refusal import refusal_section

    evaluate(model_path, small_curated, tmp_path)
    results = {s: json.loads((tmp_path / f"{s}.json").read_text()) for s in ("eval", "test", "other")}
    numbers, figure = refusal_section(results, tmp_path, tmp_path)
    assert (numbers["rule"], numbers["score"]) == (None, "max_probability")
    assert {s: r["refused"] for s, r in numbers["refused"].items()} == {"eval": 0, "test": 0, "other": 0}
    assert (tmp_path / figure).is_file()
    del results["other"]["predictions"][0]["score"]
    with pytest.raises(DigitsError) as caught:
        refusal_section(results, tmp_path, tmp_path)
    assert str(caught.value) == f"{tmp_path / 'other.json'} has no refusal scores: run `make evaluate` again"


def report_argv(inputs, out):
    i = inputs
    return [
        "--curated-dir",
        i["curated"],
        "--train-dir",
        i["train"],
        "--model",
        i["model"],
        "--eval-dir",
        i["eval"],
        "--timings-dir",
        i["timings"],
        "--output-dir",
        out,
    ]


def test_a_second_report_waits_for_the_first_and_removes_what_killed_runs_left(report_inputs, tmp_path):
    from digits_core import atomic

    out = tmp_path / "report"
    command = [sys.executable, "-m", "digits_report", *map(str, report_argv(report_inputs, out))]
    with atomic.exclusive(out):  # as a first report holds it
        killed = tmp_path / ".report.k2j4.tmp"  # the scratch folder of a report killed half way
        killed.mkdir()
        (killed / "counts.png").write_bytes(b"\x89PNG half")
        second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert second.stderr.readline() == f"waiting for another run that is writing {out} ...\n"
        assert killed.exists()
    stdout, stderr = second.communicate()
    assert (second.returncode, stdout, stderr) == (0, f"report written to {out / 'index.html'}\n", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".report.lock", "report"]
    assert json.loads((out / "report.json").read_text())["figures"]["counts"] == "counts.png"


def test_report_never_replaces_a_folder_holding_other_files(report_inputs, tmp_path):
    (tmp_path / "eval.json").write_text("{}")  # e.g. --output-dir artifacts/eval, mistyped
    i = report_inputs
    with pytest.raises(DigitsError, match=r"holds files `digits-report` did not write \(eval.json\)"):
        write_report(i["curated"], i["train"], i["model"], i["eval"], i["timings"], tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["eval.json"]


def test_report_output_dir_empty_is_a_usage_error_not_the_current_folder(
    capsys, report_inputs, tmp_path, monkeypatch
):
    from digits_report import cli as report_cli

    monkeypatch.chdir(tmp_path)
    argv = [str(a) for a in report_argv(report_inputs, "")]
    code = run_fire(report_cli.report, "digits-report", argv)
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert captured.err == "digits-report: error: --output-dir must name a path to write, got ''\n"
    assert list(tmp_path.iterdir()) == []


def test_report_refuses_a_folder_of_holiday_photos(capsys, report_inputs, tmp_path):
    from digits_report import cli as report_cli

    photos = tmp_path / "holiday"
    photos.mkdir()
    for name in ("beach.png", "counts.png", "sunset.png", "training.png"):
        Image.new("RGB", (4, 4), (200, 120, 40)).save(photos / name)
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    code = run_fire(report_cli.report, "digits-report", [str(a) for a in report_argv(report_inputs, photos)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err == (
        f"digits-report: error: {photos} holds files `digits-report` did not write (beach.png, counts.png, "
        "sunset.png, ...), so it will not replace it: move them out or choose a new or empty output folder\n"
    )
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before


def test_a_report_is_replaced_by_the_next_unless_a_user_added_a_file(report, report_inputs, tmp_path):
    from digits_core import ownership

    i = report_inputs
    out = shutil.copytree(report["dir"], tmp_path / "report")
    assert ownership.written_by(out) == {
        "step": "digits-report",
        "files": sorted(p.name for p in out.iterdir() if p.name != ownership.MARK),
    }
    write_report(i["curated"], i["train"], i["model"], i["eval"], i["timings"], out)
    assert ownership.written_by(out)["step"] == "digits-report"
    (out / "notes.txt").write_text("for the meeting")
    with pytest.raises(DigitsError, match=r"did not write \(notes.txt\)"):
        write_report(i["curated"], i["train"], i["model"], i["eval"], i["timings"], out)
    assert (out / "notes.txt").read_text() == "for the meeting"
    (out / "notes.txt").unlink()
    (out / "index.html").write_text("<h1>the page I edited for the meeting</h1>")
    with pytest.raises(DigitsError, match=r"changed since `digits-report` wrote them \(index.html\)"):
        write_report(i["curated"], i["train"], i["model"], i["eval"], i["timings"], out)
    assert (out / "index.html").read_text() == "<h1>the page I edited for the meeting</h1>"


def test_a_users_site_that_looks_like_an_older_report_is_never_wiped(capsys, report_inputs, tmp_path):
    from digits_report import cli as report_cli

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>my site</h1>")
    (site / "report.json").write_text(json.dumps({"figures": {"logo": "logo.png"}}))
    Image.new("RGB", (4, 4), (200, 120, 40)).save(site / "logo.png")
    before = {p.name: p.read_bytes() for p in site.iterdir()}
    code = run_fire(report_cli.report, "digits-report", [str(a) for a in report_argv(report_inputs, site)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err == (
        f"digits-report: error: {site} holds files `digits-report` did not write (index.html, logo.png, "
        "report.json), so it will not replace it: move them out or choose a new or empty output folder\n"
    )
    assert {p.name: p.read_bytes() for p in site.iterdir()} == before


def test_a_report_of_the_previous_version_is_not_wiped_on_its_names_alone(
    capsys, report, report_inputs, tmp_path
):
    """Its record lists names, as a copied or forged one would: nothing proves the files are its own."""
    from digits_core import ownership
    from digits_report import cli as report_cli

    out = shutil.copytree(report["dir"], tmp_path / "report")
    names = sorted(p.name for p in out.iterdir() if p.name != ownership.MARK)
    (out / ownership.MARK).write_text(json.dumps({"step": "digits-report", "files": names}))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code = run_fire(report_cli.report, "digits-report", [str(a) for a in report_argv(report_inputs, out)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err == (
        f"digits-report: error: {out} has a record of an older version, which lists names but not contents, "
        "so `digits-report` cannot tell its files from a user's and will not replace it: "
        f"delete {out} yourself if nothing in it is needed, or choose another output folder\n"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_report_on_a_full_disk_is_one_line_and_leaves_nothing(capsys, report_inputs, small_disk):
    from digits_report import cli as report_cli

    disk = small_disk(64)
    out = disk / "report"
    code = run_fire(report_cli.report, "digits-report", [str(a) for a in report_argv(report_inputs, out)])
    captured = capsys.readouterr()
    assert code == 1
    assert_disk_full_line(captured.err, "digits-report", out)
    assert sorted(p.name for p in disk.iterdir()) == [".report.lock"]


def test_training_paragraph_says_when_the_model_is_an_ensemble(report, report_inputs, tmp_path):
    assert "networks side by side" not in report["index"].read_text()  # the fixture's run: one network
    train = tmp_path / "train"
    shutil.copytree(report_inputs["train"], train)
    summary = json.loads((train / "summary.json").read_text())
    summary["config"] = {"seed": 1, "members": 2, "selection": "final", "ema_decay": 0.995}
    (train / "summary.json").write_text(json.dumps(summary))
    i = report_inputs
    page = write_report(i["curated"], train, i["model"], i["eval"], i["timings"], tmp_path / "r").read_text()
    ensemble = "3 epochs in 1.5 s of\n2 networks side by side, kept as one model that averages their logits;"
    assert ensemble in page
    assert "the model is the final weights of epoch 1, averaged\n(moving average, decay 0.995)" in page
    assert "kernels" not in page  # the fixture's model does not say what trained it


@pytest.mark.parametrize(
    ("trained_on", "said"),
    [
        (  # models of older versions do not name the CPU's maker
            {"cpu_kernels": "AVX2", "torch_threads": 2},
            "Trained on torch's AVX2 kernels with\n2 threads: the same seed trains other weights",
        ),
        (
            {"cpu_kernels": "AVX2", "cpu_vendor": "AuthenticAMD", "torch_threads": 2},
            "Trained on torch's AVX2 kernels (CPU: AuthenticAMD) with\n2 threads",
        ),
    ],
)
def test_training_paragraph_names_the_kernels_cpu_and_threads_that_trained_the_model(
    report_inputs, tmp_path, trained_on, said
):
    model = onnx.load(report_inputs["model"])
    meta = {contract.META_TRAINED_ON: json.dumps(trained_on)}
    onnx.helper.set_model_props(model, {p.key: p.value for p in model.metadata_props} | meta)
    onnx.save(model, tmp_path / "model.onnx")
    i = report_inputs
    model_path, out = tmp_path / "model.onnx", tmp_path / "r"
    page = write_report(i["curated"], i["train"], model_path, i["eval"], i["timings"], out)
    assert said in page.read_text()
    numbers = json.loads((page.parent / "report.json").read_text())
    assert numbers["trained_on"] == trained_on
