"""The report's section on generated handwriting: the set, its numbers, and what is refused."""

import json
import re
import shutil
from pathlib import Path

import pytest

from digits_core.cli_support import run_fire
from digits_core.errors import DigitsError
from digits_report import cli as report_cli
from digits_report.report import write_report
from digits_runtime import cli

from helpers import HANDWRITING_EDITS, edited_handwriting

pytestmark = pytest.mark.slow  # most tests write a report: a page and its figures, drawn by matplotlib


@pytest.fixture(scope="module")
def handwriting_inputs(report_inputs, tmp_path_factory):
    from digits_data import handwriting

    root = tmp_path_factory.mktemp("hw")
    handwriting.write(root / "handwriting", per_style=2, seed=4)
    evaluations = root / "eval"
    shutil.copytree(report_inputs["eval"], evaluations)
    argv = ["evaluate", "--split", "handwriting", "--model", report_inputs["model"]]
    argv += ["--handwriting-dir", root / "handwriting", "--json", evaluations / "handwriting.json"]
    assert run_fire(cli.COMMANDS, "digits", list(map(str, argv))) == 0
    return report_inputs | {"eval": evaluations, "handwriting": root / "handwriting"}


def test_handwriting_section_shows_the_set_and_its_numbers(handwriting_inputs, tmp_path):
    i = handwriting_inputs
    out = tmp_path / "report"
    index = write_report(i["curated"], i["train"], i["model"], i["eval"], i["timings"], out, i["handwriting"])
    measured = json.loads((i["eval"] / "handwriting.json").read_text())
    numbers = json.loads((out / "report.json").read_text())
    assert numbers["handwriting"] == measured
    figures = numbers["figures"]
    assert figures["handwriting_sheet"] == "handwriting_sheet.png"
    assert (out / "handwriting_sheet.png").read_bytes() == (i["handwriting"] / "sheet.png").read_bytes()
    assert {figures["handwriting_styles"], figures["handwriting_confusion"]} == {
        "handwriting_styles.png",
        "confusion_handwriting.png",
    }
    assert ("handwriting_misread" in figures) == bool(measured["known"]["misread"])
    page = index.read_text()
    assert "<h2>Handwriting that is not MNIST</h2>" in page
    assert f"The model reads <b>{measured['known']['accuracy']:.4f}</b>" in page
    refusal = measured["refusal"]  # the test model carries a refusal rule
    assert (
        f"It accepts {refusal['known_accepted']:.4f} of them, and refuses\n"
        f"<b>{refusal['other_digit_refused']:.4f}</b> of the other digits and\n"
        f"<b>{refusal['letter_refused']:.4f}</b> of the letters."
    ) in page
    assert (
        "Of the letters written like a 0, 5 or 8 (O, o, S, s, B), "
        "which it is meant to read as those digits,\n"
        f"it refuses {refusal['look_alikes_refused']:.4f}; of every other digit and letter,\n"
        f"<b>{refusal['unlike_digits_refused']:.4f}</b>."
    ) in page
    pen = measured["known"]["accuracy_by_style"]["pen"]
    for level, cell in pen.items():
        accepted = refusal["known_accepted_by_style"]["pen"][level]["share"]
        refused = refusal["others_refused_by_style"]["pen"][level]["share"]
        row = f"<tr><td>pen</td><td>{level}</td><td>{cell['n']}</td><td>{cell['share']:.4f}</td>\n"
        assert row + f"<td>{accepted:.4f}</td>\n<td>{refused:.4f}</td>\n</tr>" in page
    for ref in re.findall(r"src=['\"]([^'\"]+)['\"]", page):
        assert (out / ref).is_file(), ref


def test_handwriting_section_of_a_model_without_a_rule(handwriting_inputs, tmp_path):
    i = handwriting_inputs
    evaluations = Path(shutil.copytree(i["eval"], tmp_path / "eval"))
    measured = json.loads((evaluations / "handwriting.json").read_text())
    measured["refusal"] = measured["refusal_rule"] = None  # as the benchmark writes it for such a model
    measured["confident"] = {"other_digit": 0.5, "letter": 0.625}
    (evaluations / "handwriting.json").write_text(json.dumps(measured))
    index = write_report(
        i["curated"], i["train"], i["model"], evaluations, i["timings"], tmp_path / "r", i["handwriting"]
    )
    page = index.read_text()
    assert (
        "It carries no refusal rule: every other digit and letter gets one of 0, 5, 8,\n"
        "0.5000 of the other digits and 0.6250\nof the letters with a probability of at least 0.9."
    ) in page
    assert "<th>accepted</th>" not in page.split("<h2>Handwriting that is not MNIST</h2>")[1]


def test_handwriting_measured_on_another_set_is_refused(handwriting_inputs, tmp_path):
    from digits_data import handwriting

    i = handwriting_inputs
    other = tmp_path / "other"
    handwriting.write(other, per_style=1, seed=4)
    with pytest.raises(DigitsError) as refused:
        write_report(i["curated"], i["train"], i["model"], i["eval"], i["timings"], tmp_path / "r", other)
    assert str(refused.value) == (
        f"{i['eval'] / 'handwriting.json'} was measured on another handwriting set than {other}: "
        "run `make evaluate`"
    )
    assert not (tmp_path / "r").exists()


def test_an_edited_handwriting_manifest_is_one_line(capsys, handwriting_inputs, tmp_path):
    i = handwriting_inputs
    for name in ("samples a dict", "label x"):
        edited = edited_handwriting(
            i["handwriting"], tmp_path / name.replace(" ", "-"), HANDWRITING_EDITS[name]
        )
        argv = ["--curated-dir", i["curated"], "--train-dir", i["train"], "--model", i["model"]]
        argv += ["--eval-dir", i["eval"], "--timings-dir", i["timings"], "--output-dir", tmp_path / "r"]
        argv += ["--handwriting-dir", edited]
        # The command line's own main, in this process: the line it prints is the point here.
        code = run_fire(report_cli.report, "digits-report", list(map(str, argv)))
        out, err = capsys.readouterr()
        problem = "has no 'samples' list" if name == "samples a dict" else "has sample 0 ("
        assert (code, out) == (1, ""), name
        assert err.startswith(f"digits-report: error: {edited / 'manifest.json'} {problem}"), name
        assert err.endswith(
            f": it was edited; delete {edited} and run `make handwriting` (or `digits-data handwriting`)\n"
        ), name
        assert not (tmp_path / "r").exists()
