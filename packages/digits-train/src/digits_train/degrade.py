"""Degradations drawn per batch, and junk the model must refuse, as torch ops on MNIST-form pixels.

The runtime's preprocessing takes away what it can (polarity, uneven light, specks apart from
the digit, position and size); what is left reaches the network as a degraded MNIST-form image:
noise on the strokes, blur, hollow outlines, marks across the digit, stains, coarse pixels. A
share of the training images gets one of these, drawn per image from a seeded generator, at
strengths up to those of the degradation suite (digits_data.degrade) and beyond; the network then
reads such digits instead of guessing. :func:`junk` makes images that are no digit at all
(scribbles, noise, two digits side by side, part of a digit) for the reject class.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SIDE = 28


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """(n, 1, 1, 1) draws in [low, high)."""
    return (low + (high - low) * torch.rand(n, generator=generator)).view(n, 1, 1, 1)


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (1, 1, SIDE, SIDE) each, centred on the image."""
    ys, xs = torch.meshgrid(torch.arange(SIDE) - 13.5, torch.arange(SIDE) - 13.5, indexing="ij")
    return ys.view(1, 1, SIDE, SIDE), xs.view(1, 1, SIDE, SIDE)


def _strokes(n: int, generator: torch.Generator, kind: str) -> torch.Tensor:
    """A mark across each image (n, 1, SIDE, SIDE) in [0, 1]: a line, a dotted line or a zigzag."""
    ys, xs = _grid(n)
    angle = _uniform(n, 0, math.pi, generator)
    offset = _uniform(n, -7, 7, generator)
    width = _uniform(n, 0.6, 1.6, generator)
    along = xs * torch.cos(angle) + ys * torch.sin(angle)
    across = -xs * torch.sin(angle) + ys * torch.cos(angle) - offset
    if kind == "zigzag":
        period, amplitude = _uniform(n, 3, 7, generator), _uniform(n, 1.5, 4, generator)
        phase = torch.remainder(along / period, 1.0)
        across = across - amplitude * (4 * torch.abs(phase - 0.5) - 1)
    mark = torch.clamp(width - torch.abs(across), 0, 1)
    if kind == "dotted":
        period = _uniform(n, 2.5, 4, generator)
        mark = mark * (torch.remainder(along / period, 1.0) < 0.5)
    return mark * _uniform(n, 0.6, 1.0, generator)


def _blobs(n: int, generator: torch.Generator, count: int, low: float, high: float) -> torch.Tensor:
    """``count`` soft round blobs per image, radius in [low, high) pixels, summed, (n, 1, SIDE, SIDE)."""
    ys, xs = _grid(n)
    total = torch.zeros(n, 1, SIDE, SIDE)
    for _ in range(count):
        cy, cx = _uniform(n, -11, 11, generator), _uniform(n, -11, 11, generator)
        radius = _uniform(n, low, high, generator)
        total = total + torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * radius**2))
    return total.clamp(0, 1)


def _blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    x = torch.arange(-3, 4, dtype=torch.float32)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = (torch.outer(g, g) / g.sum() ** 2).view(1, 1, 7, 7)
    return F.conv2d(images, kernel, padding=3)


def _dilate(images: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(images, 3, stride=1, padding=1)


def _erode(images: torch.Tensor) -> torch.Tensor:
    return -F.max_pool2d(-images, 3, stride=1, padding=1)


def _peak(images: torch.Tensor) -> torch.Tensor:
    """Scale each image so its brightest pixel is 1, as the preprocessing does."""
    return images / images.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-6)


def _noise(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Sensor noise left on the strokes and around them."""
    sigma = _uniform(len(images), 0.05, 0.35, generator)
    return images + torch.randn(images.shape, generator=generator) * sigma


def _speckle(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Multiplicative noise on the ink, and stray specks."""
    n = len(images)
    noise = torch.randn(images.shape, generator=generator) * _uniform(n, 0.2, 0.7, generator)
    specks = torch.rand(images.shape, generator=generator) < _uniform(n, 0.0, 0.04, generator)
    return torch.maximum(images * (1 + noise), specks.float())


def _outline(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each stroke's outline, hollow inside, drawn at twice the resolution (as a 2x scan)."""
    solid = (F.interpolate(images, scale_factor=2, mode="bilinear") > 0.4).float()
    thick = _dilate(solid) if torch.rand(1, generator=generator).item() < 0.5 else solid
    return _peak(F.avg_pool2d(_dilate(thick) - _erode(thick), 2))


def _edges(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The edge pixels of each stroke at this resolution."""
    solid = (images > 0.3).float()
    return solid - _erode(solid)


def _fog(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Haze the preprocessing could not take away."""
    haze = _blobs(len(images), generator, 1, 5, 10) * torch.rand(len(images), 1, 1, 1, generator=generator)
    return _peak(0.6 * images + 0.4 * haze)


KINDS = (
    _noise,
    _speckle,
    lambda x, g: _peak(_blur(x, 0.9)),
    lambda x, g: _peak(_blur(x, 1.5)),
    _outline,
    _outline,  # twice as often: hollow strokes are the farthest from anything MNIST has
    _edges,
    lambda x, g: _dilate(_dilate(x)),  # a marker pen
    lambda x, g: _dilate(_dilate(x)),
    lambda x, g: torch.maximum(x, _strokes(len(x), g, "line")),
    lambda x, g: torch.maximum(x, _strokes(len(x), g, "dotted")),
    lambda x, g: torch.maximum(x, _strokes(len(x), g, "zigzag")),
    lambda x, g: torch.maximum(x, _strokes(len(x), g, "zigzag")),
    lambda x, g: torch.maximum(x, _strokes(len(x), g, "line")),
    lambda x, g: _peak(x + 0.5 * _blobs(len(x), g, 2, 2, 5)),  # stains
    lambda x, g: x * (1 - _blobs(len(x), g, 4, 0.8, 2)),  # mud hiding parts of the strokes
    lambda x, g: F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest"),  # coarse pixels
    _fog,
)
"""Each kind of degradation: (images (B, 1, SIDE, SIDE), generator) -> degraded images."""


@dataclass(frozen=True)
class Degrade:
    """Give ``share`` of the images one degradation each, of a kind drawn uniformly per image."""

    share: float = 0.5

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Degrade a batch (B, 1, SIDE, SIDE) of pixels in [0, 1] with draws from ``generator``."""
        if self.share <= 0:
            return images
        n = len(images)
        kind = torch.randint(len(KINDS), (n,), generator=generator)
        chosen = torch.rand(n, generator=generator) < self.share
        out = images.clone()
        for k, degrade in enumerate(KINDS):
            which = torch.nonzero(chosen & (kind == k)).flatten()
            if len(which):
                out[which] = degrade(images[which], generator).clamp(0, 1)
        return out


def _partial(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What is left of each image when a straight cut near its middle takes one side away.

    The cut passes within a pixel of the centre of mass, where MNIST form puts it, so a third to
    two thirds of the ink stays (an 8 that keeps most of itself is still an 8). What is left stays
    where it was rather than being fitted to the box again: half an 8 so fitted is a 0.
    """
    n = len(images)
    ys, xs = _grid(n)
    angle = _uniform(n, 0, 2 * math.pi, generator)
    side = xs * torch.cos(angle) + ys * torch.sin(angle)
    return images * (side < _uniform(n, -1, 1, generator))


def junk(known: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Images that are no digit, as many as ``known`` (B, 1, SIDE, SIDE): scribbles, noise, two
    of the given digits squeezed side by side, or what a cut leaves of one, each kind for a
    quarter of them."""
    n = len(known)
    scribble = torch.maximum(
        torch.maximum(_strokes(n, generator, "line"), _strokes(n, generator, "zigzag")),
        _strokes(n, generator, "line"),
    )
    noise = _peak(_blur(torch.rand(known.shape, generator=generator), 1.0) ** 4)
    halves = F.interpolate(known, size=(SIDE, SIDE // 2), mode="bilinear", align_corners=False)
    pair = torch.cat([halves, halves.roll(1, 0)], dim=3)  # each digit beside the next one's
    part = _partial(known, generator)
    kind = torch.randint(4, (n,), generator=generator).view(n, 1, 1, 1)
    made = torch.where(kind == 0, scribble, torch.where(kind == 1, noise, torch.where(kind == 2, pair, part)))
    return _peak(made)
