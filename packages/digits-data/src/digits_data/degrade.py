"""Degradations that real scans and photos suffer, at strengths a person still reads without effort.

Each family is a function ``(ink, rng) -> image``: ``ink`` is a digit as white-on-black coverage in
[0, 1] on a SIDE x SIDE canvas (an MNIST digit scaled up 2x), ``rng`` a seeded generator, and the
image is float32 luminance in [0, 1] as a scanner or camera would see it. Half of the images of
each family are dark ink on light paper and half light on dark, as :func:`degrade` decides, so
polarity is part of every test. The strength of each family is fixed: the suite measures one
point per family, and the same point every time.

The families come in groups (:data:`GROUPS`): noise, blur, strokes, light, marks over the
digit, geometry, and compression. Training draws its own degradations (digits_train.degrade);
this module only defines what the suite measures.
"""

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIDE = 56  # suite images are MNIST digits scaled up 2x: room for outlines and thin marks
SCALE = SIDE // 28

Family = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` pixels (zero outside the image)."""
    x = np.arange(-int(3 * sigma + 1), int(3 * sigma + 1) + 1)
    g = np.exp(-(x**2) / (2 * sigma**2))
    return _convolve(image, np.outer(g, g) / g.sum() ** 2)


def _dilate(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image.astype(np.float32)).filter(ImageFilter.MaxFilter(size)))


def _erode(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image.astype(np.float32)).filter(ImageFilter.MinFilter(size)))


def _mark(draw_on: Callable[[ImageDraw.ImageDraw], None]) -> np.ndarray:
    """Coverage in [0, 1] of marks drawn 4x larger and reduced (anti-aliased)."""
    canvas = Image.new("L", (4 * SIDE, 4 * SIDE), 0)
    draw_on(ImageDraw.Draw(canvas))
    reduced = canvas.resize((SIDE, SIDE), Image.Resampling.BOX)
    return np.asarray(reduced, dtype=np.float32) / 255.0


def _line_through(rng: np.random.Generator, width: float) -> Callable[[ImageDraw.ImageDraw], None]:
    """A straight stroke across the digit at a random angle, through a point near the centre."""
    angle = rng.uniform(0, np.pi)
    cx, cy = (SIDE / 2 + rng.uniform(-6, 6, 2)) * 4
    dx, dy = np.cos(angle) * SIDE * 4, np.sin(angle) * SIDE * 4
    return lambda d: d.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=255, width=round(width * 4))


# --- noise ---------------------------------------------------------------------------------------


def gaussian_noise(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return ink + rng.normal(0.0, 0.22, ink.shape)


def shot_noise(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    photons = 6.0  # expected photons at full ink: Poisson noise as in a dim photo
    return rng.poisson(photons * (0.1 + 0.9 * ink)) / photons


def salt_and_pepper(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flip = rng.random(ink.shape)
    out = ink.copy()
    out[flip < 0.04] = 0.0
    out[flip > 0.96] = 1.0
    return out


def speckle_noise(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return ink * (1.0 + rng.normal(0.0, 0.6, ink.shape)) + 0.12 * rng.random(ink.shape)


# --- blur ----------------------------------------------------------------------------------------


def gaussian_blur(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _blur(ink, 2.0)


def defocus_blur(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    radius = 3
    ys, xs = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = (ys**2 + xs**2 <= radius**2).astype(np.float32)
    return _convolve(ink, disk / disk.sum())


def motion_blur(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    length, angle = 9, rng.uniform(0, np.pi)
    kernel = np.zeros((length, length), dtype=np.float32)
    c = length // 2
    for t in np.linspace(-c, c, 4 * length):
        kernel[round(c + t * np.sin(angle)), round(c + t * np.cos(angle))] = 1.0
    return _convolve(ink, kernel / kernel.sum())


def glass_blur(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each pixel swapped with one up to 2 pixels away, then a light blur: frosted glass."""
    out = _blur(ink, 0.7)
    h, w = out.shape
    for _ in range(2):
        ys, xs = np.mgrid[0:h, 0:w]
        ys2 = np.clip(ys + rng.integers(-2, 3, (h, w)), 0, h - 1)
        xs2 = np.clip(xs + rng.integers(-2, 3, (h, w)), 0, w - 1)
        out = out[ys2, xs2]
    return _blur(out, 0.7)


def _convolve(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D convolution with zero padding, by FFT (kernels here are small; images too)."""
    kh, kw = kernel.shape
    h, w = image.shape
    shape = (h + kh - 1, w + kw - 1)
    full = np.fft.irfft2(np.fft.rfft2(image, shape) * np.fft.rfft2(kernel, shape), shape)
    return full[kh // 2 : kh // 2 + h, kw // 2 : kw // 2 + w]


# --- strokes -------------------------------------------------------------------------------------


def outline(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Only the edges of each stroke, hollow inside: an outlined or stencilled digit."""
    solid = _dilate((ink > 0.4).astype(np.float32), 3)
    return np.clip(solid - _erode(solid, 3), 0, 1)


def thin_ink(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _erode(ink, 3)


def thick_ink(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _dilate(ink, 5)


# --- light ---------------------------------------------------------------------------------------


def inverted_bands(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The left and right edges inverted, as where a scan's dark margin meets the paper."""
    out = ink.copy()
    left, right = rng.integers(10, 15), rng.integers(10, 15)
    out[:, :left] = 1.0 - out[:, :left]
    out[:, SIDE - right :] = 1.0 - out[:, SIDE - right :]
    return out


def gradient_light(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:SIDE, 0:SIDE] / SIDE - 0.5
    ramp = 0.5 + (np.cos(angle) * xs + np.sin(angle) * ys)  # 0..1 across the image
    return 0.55 * ramp + 0.45 * ink


def shadow(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hard shadow over part of the page: the digit's contrast halves there."""
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:SIDE, 0:SIDE] / SIDE - 0.5
    shaded = (np.cos(angle) * xs + np.sin(angle) * ys) > rng.uniform(-0.2, 0.2)
    return np.where(shaded, 0.5 * ink, 0.15 + 0.85 * ink)


def fog(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    haze = _blur(rng.random((SIDE, SIDE)).astype(np.float32), 6.0)
    haze = (haze - haze.min()) / max(float(np.ptp(haze)), 1e-6)
    return 0.55 * ink + 0.4 * haze


def low_contrast(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return 0.42 + 0.16 * ink


# --- marks over the digit ------------------------------------------------------------------------


def line(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.maximum(ink, _mark(_line_through(rng, 2.0)))


def dotted_line(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, np.pi)
    cx, cy = SIDE / 2 + rng.uniform(-6, 6, 2)

    def draw(d: ImageDraw.ImageDraw) -> None:
        for t in np.arange(-SIDE, SIDE, 5.0):
            x, y = 4 * (cx + t * np.cos(angle)), 4 * (cy + t * np.sin(angle))
            d.ellipse([x - 5, y - 5, x + 5, y + 5], fill=255)

    return np.maximum(ink, _mark(draw))


def zigzag(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    y0, amplitude, period = SIDE / 2 + rng.uniform(-8, 8), rng.uniform(4, 7), rng.uniform(8, 12)
    xs = np.arange(0, SIDE + period, period / 2)
    ys = y0 + amplitude * np.where(np.arange(len(xs)) % 2, 1, -1)
    points = [(4 * x, 4 * y) for x, y in zip(xs, ys, strict=True)]
    return np.maximum(ink, _mark(lambda d: d.line(points, fill=255, width=8, joint="curve")))


def underline(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rows = np.flatnonzero(ink.max(1) > 0.3)
    y = min(SIDE - 3, rows[-1] + 3) if rows.size else SIDE - 6
    x0, x1 = rng.uniform(4, 14), rng.uniform(SIDE - 14, SIDE - 4)
    return np.maximum(ink, _mark(lambda d: d.line([(4 * x0, 4 * y), (4 * x1, 4 * y)], fill=255, width=8)))


def stain(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft translucent blot, as of coffee, partly over the digit."""
    cx, cy = SIDE / 2 + rng.uniform(-14, 14, 2)
    r = rng.uniform(9, 14)
    blot = _blur(
        _mark(lambda d: d.ellipse([4 * (cx - r), 4 * (cy - r), 4 * (cx + r), 4 * (cy + r)], fill=255)), 3
    )
    return ink + 0.35 * blot


def spatter(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Drops of mud: dark blotches that hide ink and mark the paper."""
    drops = []
    for _ in range(rng.integers(6, 10)):
        cx, cy, r = *rng.uniform(4, SIDE - 4, 2), rng.uniform(1.0, 2.5)
        drops.append((4 * (cx - r), 4 * (cy - r), 4 * (cx + r), 4 * (cy + r)))
    mud = _mark(lambda d: [d.ellipse(box, fill=255) for box in drops])
    # On the page mud is dark: over light paper it shows as ink would, over ink it hides it.
    return np.clip(ink * (1.0 - mud) + 0.6 * mud * (1.0 - ink), 0, 1)


# --- geometry ------------------------------------------------------------------------------------


def _affine(ink: np.ndarray, matrix: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Resample ``ink`` through output -> input map ``matrix @ (y, x) + offset`` about the centre."""
    c = (SIDE - 1) / 2
    ys, xs = np.mgrid[0:SIDE, 0:SIDE] - c
    src = np.einsum("ij,jhw->ihw", matrix, np.stack([ys, xs])) + c + offset[:, None, None]
    y0, x0 = np.floor(src).astype(int)
    fy, fx = src[0] - y0, src[1] - x0

    def at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        inside = (y >= 0) & (y < SIDE) & (x >= 0) & (x < SIDE)
        return np.where(inside, ink[np.clip(y, 0, SIDE - 1), np.clip(x, 0, SIDE - 1)], 0.0)

    return (
        at(y0, x0) * (1 - fy) * (1 - fx)
        + at(y0, x0 + 1) * (1 - fy) * fx
        + at(y0 + 1, x0) * fy * (1 - fx)
        + at(y0 + 1, x0 + 1) * fy * fx
    )


def rotation(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    a = np.radians(rng.uniform(18, 30) * rng.choice([-1, 1]))
    return _affine(ink, np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]), np.zeros(2))


def shear(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    s = rng.uniform(0.3, 0.45) * rng.choice([-1, 1])
    return _affine(ink, np.array([[1.0, 0.0], [s, 1.0]]), np.zeros(2))


def scale(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit at half its size, off-centre: a small digit on a large page."""
    zoom = rng.uniform(0.45, 0.6)
    return _affine(ink, np.eye(2) / zoom, rng.uniform(-10, 10, 2))


def translation(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _affine(ink, np.eye(2), rng.uniform(9, 12, 2) * rng.choice([-1, 1], 2))


def elastic(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth random warp, as an unsteady hand draws."""
    coarse = rng.uniform(-1, 1, (2, 5, 5)).astype(np.float32) * 4.0
    field = [np.asarray(Image.fromarray(c).resize((SIDE, SIDE), Image.Resampling.BICUBIC)) for c in coarse]
    ys, xs = np.mgrid[0:SIDE, 0:SIDE]
    # Per-pixel displacement, sampled by rounding; the light blur after it hides the steps.
    sy = np.clip(np.rint(ys + field[0]), 0, SIDE - 1).astype(int)
    sx = np.clip(np.rint(xs + field[1]), 0, SIDE - 1).astype(int)
    out = ink[sy, sx]
    return _blur(out, 0.5)


# --- compression and resolution ------------------------------------------------------------------


def jpeg(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.uint8(np.clip(ink, 0, 1) * 255)).save(buffer, "JPEG", quality=8)
    return np.asarray(Image.open(buffer), dtype=np.float32) / 255.0


def pixelate(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    small = Image.fromarray(ink.astype(np.float32)).resize((14, 14), Image.Resampling.BOX)
    return np.asarray(small.resize((SIDE, SIDE), Image.Resampling.NEAREST))


def quantize(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two grey levels, as a cheap fax or a hard threshold gives."""
    return (ink > 0.5).astype(np.float32)


GROUPS: dict[str, tuple[Family, ...]] = {
    "noise": (gaussian_noise, shot_noise, salt_and_pepper, speckle_noise),
    "blur": (gaussian_blur, defocus_blur, motion_blur, glass_blur),
    "strokes": (outline, thin_ink, thick_ink),
    "light": (inverted_bands, gradient_light, shadow, fog, low_contrast),
    "marks": (line, dotted_line, zigzag, underline, stain, spatter),
    "geometry": (rotation, shear, scale, translation, elastic),
    "compression": (jpeg, pixelate, quantize),
}
FAMILIES: dict[str, Family] = {f.__name__: f for group in GROUPS.values() for f in group}
"""Every family by name, in suite order; ``clean`` is measured beside them."""


def upscale(image: np.ndarray) -> np.ndarray:
    """An MNIST image (28, 28) uint8 as ink coverage (SIDE, SIDE) in [0, 1]."""
    resized = Image.fromarray(image).resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255.0


def degrade(image: np.ndarray, family: str, rng: np.random.Generator) -> np.ndarray:
    """One MNIST image (28, 28) uint8 degraded by ``family`` (or ``"clean"``) as uint8 (SIDE, SIDE).

    Half the draws put dark ink on light paper (the whole image inverted after the degradation,
    as a scan of paper would be), half keep light ink on dark.
    """
    ink = upscale(image)
    out = ink if family == "clean" else FAMILIES[family](ink, rng)
    out = np.clip(out, 0.0, 1.0)
    if rng.random() < 0.5:
        out = 1.0 - out
    return np.uint8(np.rint(out * 255))
