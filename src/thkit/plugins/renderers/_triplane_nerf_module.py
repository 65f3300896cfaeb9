"""The torch side of `triplane-nerf`, and the reasons behind each part (ER-NeRF, arXiv 2307.09323).

In data-flow order:

1. **Rays inside the head's box only** (`thkit.render.nerf.bounds`). The cube [-bound, bound]^3
   of canonical head space (dm) holds the head: the synthetic subject's head silhouette spans
   x in [-1.13, 1.13], y in [-1.28, 1.33] dm and its landmarks z in [0.2, 1.17] dm, so 1.4 leaves
   a margin for hair and ears. Rays missing the box are transparent and cost nothing.
2. **Coarse-to-fine sampling with one field** (`thkit.render.nerf.sampling.CoarseToFine`):
   `coarse_samples` uniform samples give densities without gradient, front to back, stopping at
   rays that have turned opaque; `fine_samples` PDF samples are rendered. No proposal network, so
   no extra loss a spec could forget. Once the **occupancy grid** (`thkit.render.nerf.occupancy`,
   refreshed every 16 training calls) is ready, rendering in eval mode first drops the rays that
   cross no occupied cell and shortens the others to their occupied stretch. The defaults (32
   coarse, 16 fine) render within about 40 dB PSNR of 128 + 64 samples on a trained subject.
   Rendering without gradient then skips the coarse pass's field evaluations too: it looks the
   coarse densities up in a **density cache** (`thkit.render.nerf.density_cache`), the field's
   density on a `density_cache`^3 grid sampled once under neutral conditions (a zero audio code,
   open eyes) and again whenever the weights change. Only the fine samples see the frame's own
   conditions, which is where audio and blink matter: on the demo's validation frames this renders
   within 0.03 dB PSNR of the field's own coarse pass, with a third of the field evaluations.
3. **Multi-resolution tri-planes** (nerfstudio `KPlanesEncoding`, product of the three planes per
   resolution, resolutions concatenated). ER-NeRF's 2D hash grids are a CUDA extension; dense
   planes are pure torch and small at these resolutions (3 x 8 x 256^2 values for the finest).
4. **Region attention on the audio code.** The per-frame code is projected to `audio_dim` by a
   small MLP (once per frame, not per point). Each point computes a sigmoid gate per channel from
   its spatial features and multiplies the projected code by it: audio can only reach the density
   and colour of points whose gate opens, i.e. the mouth and jaw once trained. `reg_ambient`, the
   gate's channel mean accumulated along each ray with the rendering weights, lets the trainer push
   the gate shut outside the face (ER-NeRF's ambient loss), which removes audio-driven jitter of
   hair, ears and background.
5. **Blink through its own gate** (ER-NeRF's eye attention): a scalar sigmoid gate from the
   spatial features multiplies the blink value, so only the eyes read it; `reg_eye` is its
   accumulation along rays, for the same kind of loss.
6. **Density head**: MLP(features, gated audio, gated blink) -> density (truncated exp of the raw
   output minus 3, per dm) and `geo_features` for the colour head. The offset makes the untrained
   field a faint haze (about 0.05 per dm, alpha about 0.13 across the box): empty space starts
   empty, the occupancy grid starts below its threshold, and the entropy regulariser pushes what
   is left of the haze to 0. With nerfacto's offset of 1 the box starts 60 % opaque, and entropy
   then pushes it to a solid box painted with the background (an equally good fit to the images).
7. **Colour head**: MLP(geometry features, view direction in degree-4 spherical harmonics, per-frame
   latent code) -> sigmoid rgb. Frames the code table never saw use the table's mean
   (`thkit.render.nerf.codes`). The view direction and the code are the same for all the samples of
   a ray, so the first layer's share of them is computed once per ray.
8. **Volume rendering** with nerfstudio's renderers (`thkit.render.nerf.volume`): premultiplied
   rgb, accumulated alpha, expected depth; `reg_entropy` is the binary entropy of alpha per ray.
   Rays outside the box (or, when rendering with the grid, crossing no occupied cell) get rgba 0,
   depth `far`, and zero regularisers.

Rendering without gradient (whole frames) runs the network in bfloat16 where the hardware has it
(`inference_precision`; the coarse pass of training too, which only places samples), and works
through the rays `chunk` at a time, so memory stays bounded at 512^2. Everything follows the device
of the module's parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from nerfstudio.field_components.activations import trunc_exp
from nerfstudio.field_components.encodings import SHEncoding
from nerfstudio.field_components.mlp import MLP
from torch import Tensor, nn

from thkit.core.pixels import PixelBatch
from thkit.render.nerf.bounds import BoxRays, at_pixels, rays_in_box
from thkit.render.nerf.codes import FrameCodes
from thkit.render.nerf.compose import alpha_entropy
from thkit.render.nerf.density_cache import DensityCache, weights_key
from thkit.render.nerf.encodings import MultiResTriplanes
from thkit.render.nerf.occupancy import OccupancyGrid
from thkit.render.nerf.sampling import CoarseToFine, ray_bundle
from thkit.render.nerf.volume import VolumeRenderer, along_rays

DENSITY_BIAS = -3.0
EYE_GATE_HIDDEN = 16
SH_LEVELS = 4


def inference_autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast where no gradient is recorded and the hardware runs it natively, else nothing."""
    if not enabled or torch.is_grad_enabled():
        return contextlib.nullcontext()
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported() if device.type == "cpu" else device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.autocast(device.type, dtype=torch.bfloat16) if native else contextlib.nullcontext()


@dataclass
class FrameConditions:
    """The conditions of the batch's F frames, computed once per call."""

    audio: Float[Tensor, "F audio_dim"]  # projected audio code
    blink: Float[Tensor, "F 1"] | None
    latent: Float[Tensor, "F latent_dim"] | None


@dataclass
class FieldOutput:
    density: Float[Tensor, "H N 1"]
    geo: Float[Tensor, "H N geo"]
    gate: Float[Tensor, "H N audio_dim"]
    eye_gate: Float[Tensor, "H N 1"] | None


class TriplaneNerfModule(nn.Module):
    def __init__(
        self,
        *,
        audio_in: int,
        use_blink: bool,
        n_frames: int,
        resolutions: Sequence[int],
        channels: int,
        hidden: int,
        layers: int,
        gate_hidden: int,
        geo_features: int,
        audio_dim: int,
        latent_dim: int,
        bound: float,
        near: float,
        far: float,
        coarse_samples: int,
        fine_samples: int,
        occupancy: int,
        chunk: int,
        bfloat16_inference: bool,
        density_cache: int,
    ) -> None:
        super().__init__()
        self.bound, self.near, self.far = bound, near, far
        self.fine_samples = fine_samples
        self.chunk = chunk
        self.use_blink = use_blink
        self.bfloat16_inference = bfloat16_inference

        self.audio_net = MLP(audio_in, 2, audio_dim, audio_dim, activation=nn.LeakyReLU(0.02))
        self.planes = MultiResTriplanes(resolutions, channels)
        features = self.planes.out_dim
        self.audio_gate = MLP(features, 2, gate_hidden, audio_dim)
        self.eye_gate = MLP(features, 2, EYE_GATE_HIDDEN, 1) if use_blink else None
        self.density_net = MLP(features + audio_dim + int(use_blink), layers, hidden, 1 + geo_features)
        self.direction = SHEncoding(levels=SH_LEVELS, implementation="torch")
        self.codes = FrameCodes(n_frames, latent_dim) if latent_dim else None
        self.colour_net = MLP(geo_features + SH_LEVELS**2 + latent_dim, 2, hidden, 3, out_activation=nn.Sigmoid())

        self.sampler = CoarseToFine(coarse_samples, fine_samples)
        self.occupancy = OccupancyGrid(occupancy, bound) if occupancy else None
        self.density_cache = DensityCache(density_cache, bound) if density_cache and occupancy else None
        self.renderer = VolumeRenderer()

    # -- the field ----------------------------------------------------------------------------

    def field(self, positions: Float[Tensor, "H N 3"], slot: Int[Tensor, "H"], frames: FrameConditions) -> FieldOutput:
        """Density, geometry features and gates at points; `slot` picks each ray's frame conditions."""
        rays, count = positions.shape[:2]
        device = positions.device
        with inference_autocast(device, self.bfloat16_inference):
            # One cast of each input to the autocast type, instead of one per layer that reads it.
            dtype = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else positions.dtype
            features = self.planes((positions / self.bound).reshape(-1, 3)).reshape(rays, count, self.planes.out_dim).to(dtype)
            gate = torch.sigmoid(self.audio_gate(features))
            parts = [features, gate * frames.audio[slot][:, None, :].to(dtype)]
            eye_gate = None
            if self.eye_gate is not None:
                assert frames.blink is not None
                eye_gate = torch.sigmoid(self.eye_gate(features))
                parts.append(eye_gate * frames.blink[slot][:, None, :].to(dtype))
            raw = self.density_net(torch.cat(parts, dim=-1)).float()
        density = trunc_exp(raw[..., :1] + DENSITY_BIAS)
        return FieldOutput(density, raw[..., 1:], gate.float(), None if eye_gate is None else eye_gate.float())

    def view(self, directions: Float[Tensor, "H 3"], latent: Float[Tensor, "H latent"] | None) -> Float[Tensor, "H view"]:
        """What the colour head reads besides geometry, once per ray: the view direction in spherical harmonics, the frame's code."""
        return torch.cat([self.direction(directions)] + ([latent] if latent is not None else []), dim=-1)

    def colour(self, geo: Float[Tensor, "H N geo"], view: Float[Tensor, "H view"]) -> Float[Tensor, "H N 3"]:
        """The colour head at every sample of every ray.

        Its first layer reads (geometry, view), and the view part is the same for all the samples of
        a ray: it is applied once per ray and added to every sample's geometry part. The same
        function as the MLP on the concatenated inputs, without a per-sample copy of the view.
        """
        first, *rest = self.colour_net.layers
        split = geo.shape[-1]
        with inference_autocast(geo.device, self.bfloat16_inference):
            x = F.linear(geo, first.weight[:, :split]) + F.linear(view, first.weight[:, split:], first.bias)[:, None, :]
            for layer in rest:
                x = layer(self.colour_net.activation(x))
            return self.colour_net.out_activation(x).float()

    # -- rendering ----------------------------------------------------------------------------

    def forward(self, batch: PixelBatch, conditions: dict[str, Tensor]) -> dict[str, Tensor]:
        device = self.planes.levels[0].plane_coefs[0].device
        batch = batch.to(device)
        frames = self.frame_conditions(batch, conditions)
        if self.training and self.occupancy is not None:
            self.occupancy.step(lambda points: self.grid_density(points, frames))

        rays = rays_in_box(batch, self.bound, self.near, self.far)
        lookup = None
        if not self.training and self.occupancy is not None and self.occupancy.ready:
            rays = self.occupancy.clip(rays, self.chunk)
            if self.density_cache is not None and not torch.is_grad_enabled():
                lookup = self.refreshed_cache()
        chunks = [self.render_rays(rays.take(i, i + self.chunk), frames, lookup) for i in range(0, len(rays), self.chunk)]
        index = torch.cat([c[0] for c in chunks]) if chunks else rays.index

        def scatter(position: int, shape: tuple[int, ...] = (), fill: float = 0.0) -> Tensor:
            return at_pixels(index, [c[position] for c in chunks], batch.n_rays, shape, fill)

        rgb, alpha = scatter(1, (3,)), scatter(2)
        result = {
            "rgba": torch.cat([rgb, alpha[:, None]], dim=-1),
            "depth": scatter(3, fill=self.far),
            "reg_ambient": scatter(4),
            "reg_entropy": alpha_entropy(alpha),
        }
        if self.eye_gate is not None:
            result["reg_eye"] = scatter(5)
        return result

    def frame_conditions(self, batch: PixelBatch, conditions: dict[str, Tensor]) -> FrameConditions:
        audio = self.audio_net(conditions["audio"].to(batch.pixels.device, torch.float32))
        blink = conditions["blink"].to(audio).reshape(-1, 1) if self.use_blink else None
        latent = self.codes(batch.frame_ids) if self.codes is not None else None
        return FrameConditions(audio, blink, latent)

    def grid_density(self, points: Float[Tensor, "P 3"], frames: FrameConditions) -> Float[Tensor, "P"]:
        """Density at points, each under the conditions of a random frame of the batch (occupancy updates)."""
        slot = torch.randint(frames.audio.shape[0], (points.shape[0],), device=points.device)
        return self.field(points[:, None, :], slot, frames).density[:, 0, 0]

    def refreshed_cache(self) -> DensityCache:
        """The density cache, sampled from the current weights under neutral conditions (zero audio code, open eyes)."""
        assert self.density_cache is not None and self.occupancy is not None
        key = weights_key(self, self.occupancy.density)

        def density(points: Tensor) -> Tensor:
            audio = self.audio_net(points.new_zeros(1, self.audio_net.in_dim))
            neutral = FrameConditions(audio, audio.new_zeros(1, 1) if self.use_blink else None, None)
            slot = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
            return self.field(points[:, None, :], slot, neutral).density[:, 0, 0]

        self.density_cache.refresh(key, density, self.occupancy.occupied)
        return self.density_cache

    def render_rays(self, rays: BoxRays, frames: FrameConditions, lookup: DensityCache | None = None) -> tuple[Tensor, ...]:
        """(ray index, premultiplied rgb, alpha, depth, ambient, eye) for the rays that render anything.

        With `lookup`, the fine samples are placed by its densities instead of the field's coarse pass.
        """
        bundle = ray_bundle(rays)
        if lookup is not None:
            samples = self.sampler.from_lookup(bundle, lookup)
        else:
            samples = self.sampler(bundle, lambda points, ray_ids: self.field(points, rays.slot[ray_ids], frames).density)
        out = self.field(samples.frustums.get_positions(), rays.slot, frames)
        weights = samples.get_weights(out.density)
        rgb = self.colour(out.geo, self.view(rays.directions, frames.latent[rays.slot] if frames.latent is not None else None))
        composite = self.renderer(samples, weights, rgb)
        ambient = along_rays(weights, out.gate.mean(dim=-1))
        eye = along_rays(weights, out.eye_gate[..., 0]) if out.eye_gate is not None else ambient.new_zeros(ambient.shape)
        return rays.index, composite.rgb, composite.alpha, composite.depth, ambient, eye
