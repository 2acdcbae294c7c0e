"""Batch augmentation with torch ops: the ways real handwriting differs from one MNIST image.

Rotation, shift and scale move and size the digit; shear slants it, as cursive and hurried
writing does; stroke width imitates other pens (MNIST strokes are all of one width). Every
image gets its own random draw from a seeded generator, so runs are reproducible.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Jitter:
    """Random per-image affine maps and stroke-width changes; ranges are symmetric around identity.

    ``stroke`` is the probability that an image's strokes are thickened, and also that they are
    thinned (3x3 grey dilation or erosion), so ``1 - 2 * stroke`` of the images keep their pen.
    """

    degrees: float = 10.0
    shift: float = 0.1  # fraction of the half-width, in affine_grid's [-1, 1] coordinates
    scale: float = 0.1
    shear: float = 0.3  # horizontal shear factor: x' = x + shear * y
    stroke: float = 0.25
    elastic: float = 0.0  # peak displacement of a smooth random warp, in affine_grid's units; 0: none

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch (B, 1, H, W) of pixels in [0, 1] with draws from ``generator``."""
        n = images.shape[0]

        def uniform(limit: float) -> torch.Tensor:  # (B,) in [-limit, limit]
            return (torch.rand(n, generator=generator) * 2 - 1) * limit

        angle = uniform(math.radians(self.degrees))
        zoom = 1 + uniform(self.scale)
        shear = uniform(self.shear)
        tx, ty = uniform(self.shift), uniform(self.shift)
        pen = torch.rand(n, generator=generator).view(n, 1, 1, 1)  # (B, 1, 1, 1)
        if self.stroke > 0:
            thick = F.max_pool2d(images, 3, stride=1, padding=1)
            thin = -F.max_pool2d(-images, 3, stride=1, padding=1)
            images = torch.where(pen < self.stroke, thick, torch.where(pen > 1 - self.stroke, thin, images))
        # Output-to-input map: rotation and zoom, then shear (B, 2, 2), plus the shift.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        rotate = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
        slant = torch.stack(
            [torch.stack([torch.ones(n), shear], 1), torch.stack([torch.zeros(n), torch.ones(n)], 1)], 1
        )
        theta = torch.cat([rotate @ slant, torch.stack([tx, ty], 1).unsqueeze(2)], 2)  # (B, 2, 3)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, H, W, 2)
        if self.elastic > 0:
            # Elastic distortion: a coarse 4x4 field of random offsets, smoothly upsampled, bends
            # strokes locally the way a hand wobbles, which no affine map does.
            coarse = (torch.rand(n, 2, 4, 4, generator=generator) * 2 - 1) * self.elastic
            field = F.interpolate(coarse, size=images.shape[-2:], mode="bicubic", align_corners=True)
            grid = grid + field.permute(0, 2, 3, 1)
        return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")
