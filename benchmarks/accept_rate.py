"""What the refusal rule trades when it keeps more validation digits: the rule chosen again at other
known-accept rates, on models already trained.

Export chooses the rule to keep 99.5% of the validation digits (`KNOWN_ACCEPT_RATE`). For each
model (one per seed, as `benchmarks/seeds.py --keep-dir DIR` keeps them) and each rate, this
chooses the rule again exactly as export does, on the same validation data, writes it into a copy
of the model, and measures that copy as `benchmarks/seeds.py` measures a seed: the validation
columns (other_val refused, degraded validation digits accepted and wrong, held-out-font letters
refused) and the reported ones (eval digits accepted, MNIST's other digits refused, the generated
handwriting's other digits and letters refused, with and without the letters written like 0, 5
or 8, clean suite images accepted, the largest share accepted and wrong in any family of the
suite). One row per model and rate, as text and JSON.

    .venv/bin/python benchmarks/accept_rate.py artifacts/seeds/seed-*.onnx --rates 0.995 0.996 0.997
"""

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from seeds import load_splits, score

from digits_core import atomic, contract, layout
from digits_data import parallel, suite
from digits_runtime import Predictor, robustness
from digits_runtime.handwriting import evaluate as evaluate_handwriting
from digits_train import typeset
from digits_train.export import KNOWN_ACCEPT_RATE, choose_refusal, refusal_inputs

COLUMNS = {  # column -> (header, format)
    "rate": ("rate", "{:>7.3f}"),
    "rule": ("rule", "{:>20}"),
    "other_val_refused": ("oval ref'd", "{:>11.4f}"),
    "degraded_val_accepted_wrong": ("dval a&w", "{:>9.4f}"),
    "letters_val_refused": ("lval ref'd", "{:>11.4f}"),
    "eval_accepted": ("eval acc'd", "{:>11.4f}"),
    "other_refused": ("other ref'd", "{:>12.4f}"),
    "handwriting_refused": ("hw ref'd", "{:>9.4f}"),
    "handwriting_unlike_refused": ("hw unlike", "{:>10.4f}"),
    "suite_clean_accepted": ("clean acc'd", "{:>12.4f}"),
    "suite_max_accepted_wrong": ("deg a&w", "{:>8.4f}"),
}


def with_rule(proto: onnx.ModelProto, rule_json: str) -> bytes:
    """The model's bytes with ``rule_json`` as its refusal rule, every other field as it was."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    for prop in copy.metadata_props:
        if prop.key == contract.META_REFUSAL:
            prop.value = rule_json
    return copy.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="ONNX models, one per seed")
    parser.add_argument("--rates", type=float, nargs="+", default=[KNOWN_ACCEPT_RATE, 0.996, 0.997, 0.998])
    parser.add_argument("--curated-dir", default=layout.CURATED_DIR)
    parser.add_argument("--handwriting-dir", default=layout.HANDWRITING_DIR)
    parser.add_argument("--suite-dir", default=layout.SUITE_DIR)
    parser.add_argument("--json", default="artifacts/accept_rate.json", help="where to write the rows")
    args = parser.parse_args()
    if not all(0.5 <= rate < 1 for rate in args.rates):
        parser.error(f"--rates must lie in [0.5, 1), got {args.rates}")
    known, other, degraded = refusal_inputs(Path(args.curated_dir))
    splits, others = load_splits(args.curated_dir)
    manifest, arrays = suite.load(args.suite_dir)
    scored = (manifest, arrays, *suite.preprocess(arrays["images"], parallel.cores()))
    letters = np.round(typeset.validation_characters() * 255).astype(np.uint8)
    widths = {column: len(fmt.format(0.0 if "f}" in fmt else "")) for column, (_, fmt) in COLUMNS.items()}
    print(f"{'model':>18}" + "".join(f"{header:>{widths[c]}}" for c, (header, _) in COLUMNS.items()))
    rows = []
    for path in args.models:
        proto = onnx.load(path)
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        labels = json.loads(Predictor(path).metadata[contract.META_LABELS])
        for rate in args.rates:
            rule, refused, harmed = choose_refusal(session, known, other, degraded, labels, rate)
            predictor = Predictor(with_rule(proto, rule.to_json()))
            tested = robustness.evaluate(predictor, *scored)["sources"]["mnist-test"]["summary"]
            handwriting = evaluate_handwriting(predictor, args.handwriting_dir)
            row = {
                "model": path,
                "rate": rate,
                "rule": f"{rule.score} {rule.min_probability:.1f}",
                "other_val_refused": refused[rule.score],
                "degraded_val_accepted_wrong": harmed[rule.score],
                "letters_val_refused": 1 - float(predictor.classify(letters).accepted.mean()),
                "eval_accepted": score(predictor, splits["eval"])["accepted"],
                "other_refused": 1 - float(predictor.classify(others.images).accepted.mean()),
                "handwriting_refused": handwriting["refusal"]["others_refused"],
                "handwriting_unlike_refused": handwriting["refusal"]["unlike_digits_refused"],
                "suite_clean_accepted": tested["clean_accepted"],
                "suite_max_accepted_wrong": tested["max_accepted_wrong"],
            }
            rows.append(row)
            cells = "".join(fmt.format(row[column]) for column, (_, fmt) in COLUMNS.items())
            print(f"{Path(path).stem:>18}{cells}", flush=True)
    atomic.write_text(args.json, json.dumps(rows, indent=1) + "\n")
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
