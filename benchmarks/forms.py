"""Digits written in forms: in a box, a comb field, a cell open at the top, on ruled and squared paper.

The degradation suite has no form: a scan of a form cut to one field keeps the field's lines along
its edges, and ruled or squared paper puts lines behind the digit. This draws MNIST test 0/5/8
(seeded, the same images every run) as 2x scans in each of those, half dark ink on light paper,
and scores each model as image files are scored: accuracy, the share its refusal rule accepts,
and the share accepted with a wrong digit. Each is measured twice in the same run: with the
preprocessing as it is, and with the preprocessing before it knew of boxes (no frame step, the
paper's shade read from the outermost pixels alone), so the difference is the frame step's.

    .venv/bin/python benchmarks/forms.py [artifacts/model.onnx ...] [--count 600]
"""

import argparse
import statistics
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

import digits_core.images
from digits_core import layout
from digits_data import dataset
from digits_runtime import Predictor

SIDE = 56  # an MNIST digit scaled up 2x, as the suite draws it
SCALE = 4  # lines are drawn this many times larger and reduced: anti-aliased, as a scan's are


def _lines(draw_on: Callable[[ImageDraw.ImageDraw, int], None], rng: np.random.Generator) -> np.ndarray:
    """Coverage (SIDE, SIDE) in [0, 1] of lines drawn by ``draw_on(draw, inset)``, ``inset`` (the
    box's distance from the edges, 1-4 pixels) drawn from ``rng``."""
    canvas = Image.new("L", (SCALE * SIDE, SCALE * SIDE), 0)
    draw_on(ImageDraw.Draw(canvas), int(rng.integers(1, 5)) * SCALE)
    return np.asarray(canvas.resize((SIDE, SIDE), Image.Resampling.BOX), dtype=np.float32) / 255.0


def _box(draw: ImageDraw.ImageDraw, m: int) -> None:
    end = SCALE * SIDE - m
    draw.rectangle([m, m, end, end], outline=255, width=2 * SCALE)


def _comb(draw: ImageDraw.ImageDraw, m: int) -> None:
    for x in (m, SCALE * SIDE - m):
        draw.line([(x, 0), (x, SCALE * SIDE)], fill=255, width=2 * SCALE)


def _cell(draw: ImageDraw.ImageDraw, m: int) -> None:
    end = SCALE * SIDE - m
    draw.line([(m, 0), (m, end), (end, end), (end, 0)], fill=255, width=2 * SCALE)


def _ruled(draw: ImageDraw.ImageDraw, m: int) -> None:
    for y in range(m, SCALE * SIDE, 12 * SCALE):
        draw.line([(0, y), (SCALE * SIDE, y)], fill=150, width=SCALE)


def _squared(draw: ImageDraw.ImageDraw, m: int) -> None:
    for at in range(m, SCALE * SIDE, 8 * SCALE):
        draw.line([(0, at), (SCALE * SIDE, at)], fill=110, width=SCALE)
        draw.line([(at, 0), (at, SCALE * SIDE)], fill=110, width=SCALE)


FORMS = {"box": _box, "comb field": _comb, "open cell": _cell, "ruled": _ruled, "squared": _squared}


def drawn(image: np.ndarray, form: str, rng: np.random.Generator) -> Image.Image:
    """One MNIST image (28, 28) uint8 as a 2x scan in ``form``; half are dark ink on light paper."""
    ink = np.asarray(Image.fromarray(image).resize((SIDE, SIDE), Image.Resampling.BILINEAR)) / 255.0
    out = np.maximum(ink, _lines(FORMS[form], rng))
    if rng.random() < 0.5:
        out = 1.0 - out
    return Image.fromarray(np.uint8(np.rint(out * 255)))


def score(predictor: Predictor, images: list[Image.Image], labels: np.ndarray) -> dict[str, float]:
    """Accuracy, share accepted and share accepted with a wrong digit of ``images`` read as files are."""
    classified = predictor.classify(np.stack([digits_core.images.load_image(image) for image in images]))
    right = np.asarray(classified.predicted) == labels
    return {
        "accuracy": float(right.mean()),
        "accepted": float(classified.accepted.mean()),
        "accepted_wrong": float((classified.accepted & ~right).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=[layout.MODEL], help="ONNX models")
    parser.add_argument("--count", type=int, default=600, help="MNIST test images per form")
    parser.add_argument("--curated-dir", default=layout.CURATED_DIR)
    args = parser.parse_args()
    if args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    test = dataset.load_test_split(args.curated_dir)
    chosen = np.random.default_rng(0).choice(len(test), min(args.count, len(test)), replace=False)
    labels = test.labels[chosen]
    forms = {}
    for number, form in enumerate(FORMS):
        rng = np.random.default_rng(number)
        forms[form] = [drawn(test.images[i], form, rng) for i in chosen]
    now = (digits_core.images.remove_frame, digits_core.images.PAPER_BANDS)
    before = (lambda ink: ink, (0.0,))  # no frame step; the paper's shade from the outermost pixels
    print(f"{'model':>24} {'form':>11} {'accuracy':>17} {'accepted':>17} {'accepted & wrong':>17}")
    print(f"{'':>24} {'':>11}" + " {:>8} {:>8}".format("before", "now") * 3)
    rows = {form: [] for form in forms}  # form -> per model, (before, now) scores
    for path in args.models:
        predictor = Predictor(path)
        for form, images in forms.items():
            scores = []
            for frame_step, bands in (before, now):
                digits_core.images.remove_frame, digits_core.images.PAPER_BANDS = frame_step, bands
                scores.append(score(predictor, images, labels))
            digits_core.images.remove_frame, digits_core.images.PAPER_BANDS = now
            rows[form].append(scores)
            cells = "".join(f" {scores[0][c]:>8.3f} {scores[1][c]:>8.3f}" for c in scores[0])
            print(f"{path[-24:]:>24} {form:>11}{cells}", flush=True)
    if len(args.models) > 1:
        print("\nmin / mean / max over the models, now (before)")
        print("| form | accuracy | accepted | accepted and wrong |\n|---|---|---|---|")
        for form, scores in rows.items():
            cells = [
                f"{spread([s[1][c] for s in scores])} ({spread([s[0][c] for s in scores])})"
                for c in scores[0][0]
            ]
            print(f"| {form} | " + " | ".join(cells) + " |")


def spread(values: list[float]) -> str:
    """``min / mean / max`` of ``values``."""
    return f"{min(values):.3f} / {statistics.mean(values):.3f} / {max(values):.3f}"


if __name__ == "__main__":
    main()
