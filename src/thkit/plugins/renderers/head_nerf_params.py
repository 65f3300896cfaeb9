"""The params every head NeRF renderer shares: its tri-planes, MLP sizes, box, samplers and chunking.

`triplane-nerf` and `landmark-nerf` draw the same way (`thkit.render.nerf`) and differ only in how a
sample is conditioned, so their common params are declared once here. Imports no torch.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from thkit.core import Params


class HeadNerfParams(Params):
    resolutions: tuple[int, ...] = Field(
        (64, 256), min_length=1, description="tri-plane resolutions across the box, concatenated (coarse ones learn fast, fine ones hold texture)"
    )
    channels: int = Field(8, ge=1, description="feature channels per plane and resolution")
    hidden: int = Field(64, ge=1, description="width of the density and colour MLPs (ER-NeRF and the landmark paper: 64)")
    layers: int = Field(3, ge=1, description="layers of the density MLP (ER-NeRF and the landmark paper: 3); the colour MLP has 2")
    gate_hidden: int = Field(32, ge=1, description="width of the region-attention MLP that gates the audio code per point")
    geo_features: int = Field(15, ge=1, description="geometry features passed from the density MLP to the colour MLP")
    audio_dim: int = Field(32, ge=1, description="width of the audio code after projection (ER-NeRF: 64)")
    latent_dim: int = Field(4, ge=0, description="per-frame latent appearance code (ER-NeRF: 4); 0 = none")
    bound: float = Field(1.4, gt=0, description="half-size of the head's box [-bound, bound]^3 in head-space units (dm)")
    near: float = Field(0.05, ge=0, description="closest sampling distance from the camera, used when the camera is inside the box (dm)")
    far: float = Field(1000.0, gt=0, description="farthest sampling distance from the camera (dm)")
    coarse_samples: int = Field(32, ge=2, description="uniform samples per ray whose densities place the fine samples (no gradient)")
    fine_samples: int = Field(16, ge=1, description="samples per ray that are rendered, drawn from the coarse weights")
    occupancy: int = Field(48, ge=0, description="occupancy grid resolution for skipping empty space when rendering; 0 = off")
    density_cache: int = Field(
        128,
        ge=0,
        description="resolution of the density grid, sampled once from the trained field, that places the samples of renders "
        "without gradient instead of the coarse pass's field evaluations (needs the occupancy grid); 0 = always the coarse pass",
    )
    chunk: int = Field(4096, ge=1, description="rays rendered at once: bounds memory for whole frames (4096 is fastest on a CPU; raise it on a GPU)")

    @field_validator("resolutions")
    @classmethod
    def _at_least_two(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(r < 2 for r in value):
            raise ValueError(f"every plane resolution must be >= 2, got {list(value)}")
        return value
