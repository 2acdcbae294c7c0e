"""How a generated sample is rendered: jittered strokes, slant, pen, size, rotation, paper and light."""

import itertools

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from digits_data.handwriting.glyphs import Glyph

# Each rendering axis and its levels; every glyph gets them in balanced, shuffled proportions.
SLANTS = {"upright": (-0.06, 0.06), "right": (0.22, 0.45), "left": (-0.32, -0.16)}  # shear x per y


PENS = {"thin": (0.035, 0.05), "medium": (0.07, 0.095), "thick": (0.12, 0.16)}  # width / glyph height


SIZES = {"small": (0.3, 0.42), "medium": (0.5, 0.62), "large": (0.7, 0.82)}  # glyph height / frame


POLARITIES = ("dark-on-light", "light-on-dark")


AXES = {"slant": tuple(SLANTS), "pen": tuple(PENS), "size": tuple(SIZES), "polarity": POLARITIES}


JITTER = 0.022  # standard deviation of each control point's offset, in glyph heights


ROTATION = 8.0  # degrees, uniform in +-ROTATION


SUPERSAMPLE = 3  # strokes are drawn this many times larger, then reduced: anti-aliasing


def _spline(points: np.ndarray, closed: bool, steps: int = 20) -> np.ndarray:
    """Points along a centripetal Catmull-Rom curve through ``points`` (no overshoot, no cusps)."""
    if closed:
        padded = np.vstack([points[-1:], points, points[:2]])
    else:
        padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    out = []
    for i in range(len(padded) - 3):
        p0, p1, p2, p3 = padded[i : i + 4]
        t1 = np.linalg.norm(p1 - p0) ** 0.5 + 1e-6
        t2 = t1 + np.linalg.norm(p2 - p1) ** 0.5 + 1e-6
        t3 = t2 + np.linalg.norm(p3 - p2) ** 0.5 + 1e-6
        t = np.linspace(t1, t2, steps, endpoint=False)[:, None]
        a1 = (t1 - t) / t1 * p0 + t / t1 * p1
        a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
        a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
        b1 = (t2 - t) / t2 * a1 + t / t2 * a2
        b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
        out.append((t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2)
    out.append(padded[-2 if not closed else 1][None])  # end on the last point (or close the loop)
    return np.vstack(out)


def _polylines(glyph: Glyph, rng: np.random.Generator) -> list[np.ndarray]:
    """The glyph's strokes as dense polylines, with every control point jittered.

    A point shared by two strokes (a corner, or where a bar meets a stem) moves the same way in
    both, so the strokes stay joined as the writer joined them.
    """
    shared: dict[tuple[float, float], np.ndarray] = {}
    lines = []
    for stroke in glyph.strokes:
        points = []
        for p in stroke.points:
            if p not in shared:
                shared[p] = np.asarray(p) + rng.normal(0.0, JITTER, 2)
            points.append(shared[p])
        array = np.array(points)
        if stroke.kind == "line":
            # A pen's straight line is a gentle curve: a bowed midpoint on every segment.
            bowed = [array[0]]
            for a, b in itertools.pairwise(array):
                normal = np.array([a[1] - b[1], b[0] - a[0]])
                bowed += [(a + b) / 2 + normal * rng.normal(0.0, 0.03), b]
            lines += [
                _spline(np.array(bowed[i : i + 3]), closed=False, steps=12)
                for i in range(0, len(bowed) - 2, 2)
            ]
        else:
            lines.append(_spline(array, closed=stroke.kind == "loop"))
    return lines


def draw(
    glyph: Glyph, rng: np.random.Generator, styles: dict[str, str]
) -> tuple[Image.Image, dict[str, float]]:
    """Render one sample of ``glyph`` with the given style levels; return the image and its numbers."""
    lines = _polylines(glyph, rng)
    aspect = rng.uniform(0.85, 1.15)
    shear = rng.uniform(*SLANTS[styles["slant"]])
    angle = np.radians(rng.uniform(-ROTATION, ROTATION))
    cos, sin = np.cos(angle), np.sin(angle)
    transform = np.array([[cos, -sin], [sin, cos]]) @ np.array([[aspect, -shear], [0.0, 1.0]])
    lines = [line @ transform.T for line in lines]

    side = int(rng.integers(96, 161))
    height = rng.uniform(*SIZES[styles["size"]]) * side  # of the glyph before rotation, in pixels
    pen = rng.uniform(*PENS[styles["pen"]]) * height
    every = np.vstack(lines)
    low, high = every.min(0), every.max(0)
    scale = height / max(high[1] - low[1], 1e-6)
    extent = (high - low) * scale + pen
    if extent.max() > side * 0.9:  # wide glyphs at a large size: shrink to fit the frame
        shrink = side * 0.9 / extent.max()
        scale, pen = scale * shrink, pen * shrink
        extent = (high - low) * scale + pen
    margin = 0.04 * side  # a little paper all round, as on any photo or scan
    offset = margin + rng.uniform(0.0, np.maximum(side - 2 * margin - extent, 0.0)) + pen / 2

    big = side * SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    pressure_phase, pressure_speed = rng.uniform(0, 2 * np.pi), rng.uniform(2.0, 5.0)
    for line in lines:
        xy = ((line - low) * scale + offset) * SUPERSAMPLE
        # Pressure: the width swells and thins along the stroke, drawn in short runs with round joins.
        runs = np.array_split(np.arange(len(xy)), max(1, len(xy) // 6))
        for k, run in enumerate(runs):
            segment = xy[max(run[0] - 1, 0) : run[-1] + 1]
            width = (
                pen
                * SUPERSAMPLE
                * (1.0 + 0.18 * np.sin(pressure_phase + pressure_speed * k / len(runs) * np.pi))
            )
            points = [tuple(p) for p in segment]
            if len(points) > 1:
                draw.line(points, fill=255, width=max(1, round(width)), joint="curve")
            for x, y in (points[0], points[-1]):
                r = width / 2
                draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    coverage = np.asarray(canvas.resize((side, side), Image.Resampling.BOX), dtype=np.float32) / 255.0
    image = _on_paper(coverage, styles["polarity"], rng)
    numbers = {
        "side_px": side,
        "height_px": round(float(height), 1),
        "pen_px": round(float(pen), 2),
        "shear": round(float(shear), 3),
        "rotation_deg": round(float(np.degrees(angle)), 2),
    }
    return image, numbers


def _on_paper(coverage: np.ndarray, polarity: str, rng: np.random.Generator) -> Image.Image:
    """Lay ink of the given coverage (0-1 per pixel) on paper with grain and uneven light."""
    side = coverage.shape[0]
    ys, xs = np.mgrid[0:side, 0:side] / side
    light = 1.0 + rng.uniform(-0.08, 0.08) * (xs - 0.5) + rng.uniform(-0.08, 0.08) * (ys - 0.5)
    grain = rng.normal(0.0, rng.uniform(0.005, 0.03), (side, side))
    if polarity == "dark-on-light":
        paper = np.array(rng.choice([(0.97, 0.96, 0.93), (0.92, 0.92, 0.9), (0.99, 0.99, 0.99)]))
        ink = np.array(rng.choice([(0.08, 0.08, 0.1), (0.1, 0.15, 0.45), (0.25, 0.25, 0.27)]))
    else:  # chalk or white ink on a dark board
        paper = np.array(rng.choice([(0.1, 0.1, 0.1), (0.13, 0.2, 0.16), (0.02, 0.02, 0.02)]))
        ink = np.array(rng.choice([(0.95, 0.95, 0.95), (0.85, 0.85, 0.8)]))
    strength = rng.uniform(0.8, 1.0)  # ink never quite covers the paper
    alpha = (coverage * strength)[..., None]
    rgb = (paper * light[..., None] + grain[..., None]) * (1.0 - alpha) + ink * alpha
    image = Image.fromarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.3:  # out of focus
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.2)))
    if rng.random() < 0.5:  # a gray scan rather than a colour photo
        image = image.convert("L")
    return image
