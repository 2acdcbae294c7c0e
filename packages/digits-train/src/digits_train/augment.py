"""Light geometric augmentation of whole batches with torch ops: small rotation, shift and scale."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AffineJitter:
    """Random per-image affine maps; ranges are symmetric around the identity."""

    degrees: float = 10.0
    shift: float = 0.1  # fraction of the half-width, in affine_grid's [-1, 1] coordinates
    scale: float = 0.1

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Warp a batch (B, 1, H, W) with one random affine map per image, drawn from ``generator``."""
        n = images.shape[0]

        def uniform(limit: float) -> torch.Tensor:  # (B,) in [-limit, limit]
            return (torch.rand(n, generator=generator) * 2 - 1) * limit

        angle = uniform(math.radians(self.degrees))
        zoom = 1 + uniform(self.scale)
        tx, ty = uniform(self.shift), uniform(self.shift)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")
