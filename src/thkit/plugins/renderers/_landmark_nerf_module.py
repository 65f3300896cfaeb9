"""The torch side of `landmark-nerf`, and the reasons behind each part (Ma, Cao, Zhang, CVM 2025).

In data-flow order:

1. **Rays, sampling, occupancy, compositing** are `triplane-nerf`'s, from the shared blocks in
   `thkit.render.nerf`: only the part of a ray inside the head's box [-bound, bound]^3 is sampled,
   coarse-to-fine with one field (uniform samples without gradient, then PDF samples that are
   rendered), empty space is skipped with an occupancy grid once it is ready, and nerfstudio's
   renderers composite premultiplied rgb, alpha and depth. The same defaults hold for the same
   reasons (see `thkit.plugins.renderers._triplane_nerf_module`).
2. **Spatial features**: multi-resolution tri-planes of the sample's position (the paper uses a 3D
   hash grid, a CUDA extension; dense planes are pure torch).
3. **Gaussian relative position coding** (`GaussianLandmarkCoding`). Landmark k of the frame sits
   at mu_k and carries a Gaussian with a learned rotation R_k (a unit quaternion, as in the paper)
   and learned per-axis scales s_k (initially `gaussian_scale` on every axis). A sample x gets, per
   landmark, its offset in the Gaussian's frame, u_k = S_k^-1 R_k^T (x - mu_k), its Mahalanobis
   distance d_k = |u_k| and the weight w_k = exp(-d_k^2 / 2). Each offset is frequency-encoded
   (`landmark_frequencies`, the paper's degree 2; u is divided by 4 first, so the lowest frequency
   spans the +-4 sigma where weights matter) and paired with a learned per-landmark code (which
   landmark it is); the pairs are summed with the weights and projected to `landmark_dim`. The
   paper concatenates its 68 weighted codes instead, which is the same first layer with a
   separate matrix per landmark: 68 times the work for every sample, most of it multiplying zeros.
   Where a sample is covered by more than one Gaussian's worth of weight the weights are
   normalised to sum to 1 (a soft choice of "which landmark am I near"); where they sum to less
   (the edge of the face, empty space) they are kept as they are, so the code fades to a constant
   far from every landmark. That is what makes a landmark's influence local: moving the lower lip
   changes the field within a few sigma of it and nowhere else.
4. **A cut-off** (`cutoff`, in sigmas, default 3). On a CPU, weighing every sample against all 68
   landmarks costs more than the rest of the field together, while a Gaussian's weight beyond 3
   sigma is below 1.1 % and most samples of a frame are that far from every landmark. So the
   weight at the cut-off, exp(-cutoff^2 / 2), is subtracted from every weight (a weight then
   reaches 0 exactly at the cut-off, and the code stays continuous in x), and only (sample,
   landmark) pairs inside it are coded. They are found per ray first: a landmark whose Gaussian,
   at its widest, stays farther than the cut-off from the ray's sampled segment reaches none of
   its samples. The work is then proportional to the number of overlapping pairs (none on most
   rays) instead of to 68 per sample: on a CPU a 64 px frame renders in about 1.4 times
   `triplane-nerf`'s time with the default sizes, against 11 times with every pair coded
   (`cutoff: 0`, the exact weights). Keeping the K nearest landmarks per sample instead needs a
   top-k over all 68 per sample, which alone costs more than the coding it saves.
5. **Audio** (optional): the per-frame code is projected once per frame, and each point opens a
   sigmoid gate per channel from its spatial features (ER-NeRF's region attention), so audio
   reaches only the points whose gate opens. **Blink** (optional): a scalar eye gate, likewise.
6. **Density head**: MLP(tri-plane features, landmark code, gated audio, gated blink) -> density
   (truncated exp of the raw output minus 3, per dm: the untrained field is a faint haze, as in
   `triplane-nerf`) and `geo_features`. **Colour head**: MLP(geometry features, landmark code,
   view direction in degree-4 spherical harmonics, per-frame latent code) -> sigmoid rgb.
7. **Regularisers**: `reg_ambient` is, per ray, the landmark coverage (the sum of the normalised
   weights, in [0, 1]) and, with audio, the mean audio gate, each accumulated with the rendering
   weights: the ambient loss pushes both to 0 on rays outside the head mask, so neither landmarks
   nor audio move hair, ears, the torso or the background. `reg_eye` is the eye gate seen by each
   ray; `reg_entropy` the binary entropy of its alpha.

Rendering without gradient evaluates the colour head only where a sample's weight exceeds 1e-4 and
works through the rays `chunk` at a time. Everything follows the device of the module's parameters.

**Density cache** (opt-in: `density_cache`, off by default). As in `triplane-nerf`, renders without
gradient can place the fine samples from a grid of densities sampled once instead of the field's
coarse pass, which here costs most of a frame (the landmark coding of every coarse sample). The
grid is sampled under a neutral face: the mean of the landmarks the head was trained on, which
training keeps (`neutral_landmarks`, a buffer saved with the weights; runs saved before it existed
render with the coarse pass). Unlike audio in `triplane-nerf`, landmarks move the geometry of the
mouth itself, so the fine samples of a mouth far from the mean one are placed less well. On the
landmark demo's run (`thkit.demo.measure_run`, 256 px, a 128^3 grid), against the coarse pass:
the whole render pipeline 1.37 -> 2.50 frames/s (1.8x), validation PSNR 27.78 -> 27.74 dB and SSIM
0.937 -> 0.936, but the mouth-opening correlation 0.62 -> 0.56 on the validation frames (0.78 ->
0.80 on the held-out sentence). A trade for the user to make, so it is off by default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
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
WEIGHT_EPS = 1e-4  # samples below this rendering weight skip the colour head when there is no gradient
EYE_GATE_HIDDEN = 16
SH_LEVELS = 4
ENCODE_RANGE = 4.0  # offsets (in sigmas) are divided by this before the frequency encoding
IDENTITY_INIT_STD = 0.1  # initial spread of the per-landmark shifts: landmarks are told apart from the start


def frequency_encoding(x: Float[Tensor, "*S 3"], frequencies: int) -> Float[Tensor, "*S enc"]:
    """[x, sin(2 pi 2^l x), cos(2 pi 2^l x)] for l < `frequencies` (nerfstudio's NeRFEncoding, which fails on
    an empty batch: a chunk of rays with no landmark nearby has no coding pairs at all)."""
    scaled = (x[..., None] * (2 * math.pi * 2.0 ** torch.arange(frequencies, device=x.device, dtype=x.dtype))).flatten(-2)
    return torch.cat([x, torch.sin(scaled), torch.cos(scaled)], dim=-1)


def quaternion_matrix(quaternions: Float[Tensor, "L 4"]) -> Float[Tensor, "L 3 3"]:
    """Rotation matrices of quaternions (w, x, y, z), normalised first (any non-zero quaternion is a rotation)."""
    w, x, y, z = (quaternions / quaternions.norm(dim=-1, keepdim=True)).unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], dim=-1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], dim=-1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], dim=-1),
        ],
        dim=-2,
    )


class GaussianLandmarkCoding(nn.Module):
    """Samples -> landmark codes from learned anisotropic Gaussians on the landmarks (module docstring, 3-4)."""

    def __init__(self, n_landmarks: int, dim: int, frequencies: int, scale: float, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff if cutoff > 0 else math.inf
        self.floor = math.exp(-0.5 * cutoff**2) if cutoff > 0 else 0.0  # the weight at the cut-off, subtracted from every weight
        self.quaternions = nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n_landmarks, 1))
        self.log_scales = nn.Parameter(torch.full((n_landmarks, 3), math.log(scale)))
        self.frequencies = frequencies
        self.project = nn.Linear(3 * (1 + 2 * frequencies), dim)
        self.identity = nn.Parameter(IDENTITY_INIT_STD * torch.randn(n_landmarks, dim))
        self.dim = dim

    def local(self, points: Float[Tensor, "C N 3"], centres: Float[Tensor, "C 3"], landmark: Int[Tensor, "C"]) -> Float[Tensor, "C N 3"]:
        """Offsets u = S^-1 R^T (x - mu) of points from landmarks `landmark` at `centres`, in their Gaussians' frames.

        The Mahalanobis distance is d = |u|, and the Gaussian's weight exp(-d^2 / 2).
        """
        frames = quaternion_matrix(self.quaternions[landmark]).transpose(-1, -2) * torch.exp(-self.log_scales[landmark])[..., None]
        return torch.einsum("cij,cnj->cni", frames, points - centres[:, None, :])

    def candidates(self, points: Float[Tensor, "H N 3"], landmarks: Float[Tensor, "H L 3"]) -> tuple[Int[Tensor, "C"], Int[Tensor, "C"]]:
        """(row, landmark) pairs where the landmark's Gaussian may reach some of the row's points within the cut-off.

        A row's points lie on one ray (or a row is one point), so they lie on the segment of that
        line between its extreme points; d <= cutoff implies a Euclidean distance of at most
        cutoff x the Gaussian's largest scale, so a landmark farther than that from the segment
        reaches none of them.
        """
        if math.isinf(self.cutoff):
            rows, count = landmarks.shape[:2]
            grid = torch.meshgrid(torch.arange(rows, device=points.device), torch.arange(count, device=points.device), indexing="ij")
            return grid[0].flatten(), grid[1].flatten()
        start, axis = points[:, :1, :], points[:, -1:, :] - points[:, :1, :]  # [H, 1, 3]
        length = axis.square().sum(dim=-1).clamp(min=1e-12)  # [H, 1]
        spread = ((points - start) * axis).sum(dim=-1) / length  # [H, N] position of each point along the line
        along = ((landmarks - start) * axis).sum(dim=-1) / length  # [H, L]
        along = torch.minimum(torch.maximum(along, spread.amin(dim=-1, keepdim=True)), spread.amax(dim=-1, keepdim=True))
        gap = landmarks - (start + along[..., None] * axis)
        reach = self.cutoff * torch.exp(self.log_scales.detach()).amax(dim=-1)  # [L]
        return (gap.square().sum(dim=-1) < reach.square()).nonzero(as_tuple=True)

    def forward(self, points: Float[Tensor, "H N 3"], landmarks: Float[Tensor, "H L 3"]) -> tuple[Float[Tensor, "H N dim"], Float[Tensor, "H N"]]:
        """The code of each sample (row h's points against row h's frame's landmarks), and its coverage in [0, 1]."""
        rows, count = points.shape[:2]
        row, landmark = self.candidates(points, landmarks)
        local = self.local(points[row], landmarks[row, landmark], landmark)  # [C, N, 3]
        weights = (torch.exp(-0.5 * local.square().sum(dim=-1)) - self.floor).clamp(min=0.0)  # [C, N]
        pair, step = (weights > 0).nonzero(as_tuple=True)
        sample = row[pair] * count + step  # flat index of the sample each coding pair belongs to
        weights = weights[pair, step]
        total = weights.new_zeros(rows * count).index_add(0, sample, weights)
        weights = weights / total.clamp(min=1.0)[sample]
        coded = torch.cat([frequency_encoding(local[pair, step] / ENCODE_RANGE, self.frequencies), self.identity[landmark[pair]]], dim=-1)
        summed = coded.new_zeros(rows * count, coded.shape[-1]).index_add(0, sample, weights[:, None] * coded)
        offsets, identity = summed.split([self.project.in_features, self.dim], dim=-1)
        code = self.project(offsets) + identity
        return code.reshape(rows, count, self.dim), total.clamp(max=1.0).reshape(rows, count)


@dataclass
class FrameConditions:
    """The conditions of the batch's F frames, computed once per call."""

    landmarks: Float[Tensor, "F L 3"]
    audio: Float[Tensor, "F audio_dim"] | None  # projected audio code
    blink: Float[Tensor, "F 1"] | None
    latent: Float[Tensor, "F latent_dim"] | None


@dataclass
class FieldOutput:
    density: Float[Tensor, "H N 1"]
    geo: Float[Tensor, "H N geo"]
    code: Float[Tensor, "H N landmark_dim"]
    ambient: Float[Tensor, "H N k"]  # landmark coverage, then the mean audio gate when audio is connected
    eye_gate: Float[Tensor, "H N 1"] | None


@dataclass
class RenderedRays:
    """What `render_rays` returns for the rays that render anything; `index` places them in the batch."""

    index: Int[Tensor, "H"]
    rgb: Float[Tensor, "H 3"]
    alpha: Float[Tensor, "H"]
    depth: Float[Tensor, "H"]
    ambient: Float[Tensor, "H k"]
    eye: Float[Tensor, "H"]


class LandmarkNerfModule(nn.Module):
    def __init__(
        self,
        *,
        n_landmarks: int,
        audio_in: int,
        use_blink: bool,
        n_frames: int,
        resolutions: Sequence[int],
        channels: int,
        hidden: int,
        layers: int,
        geo_features: int,
        landmark_dim: int,
        landmark_frequencies: int,
        gaussian_scale: float,
        cutoff: float,
        audio_dim: int,
        gate_hidden: int,
        latent_dim: int,
        bound: float,
        near: float,
        far: float,
        coarse_samples: int,
        fine_samples: int,
        occupancy: int,
        density_cache: int,
        chunk: int,
    ) -> None:
        super().__init__()
        self.bound, self.near, self.far = bound, near, far
        self.chunk = chunk
        self.use_blink = use_blink

        self.planes = MultiResTriplanes(resolutions, channels)
        features = self.planes.out_dim
        self.coding = GaussianLandmarkCoding(n_landmarks, landmark_dim, landmark_frequencies, gaussian_scale, cutoff)
        self.audio_net = MLP(audio_in, 2, audio_dim, audio_dim, activation=nn.LeakyReLU(0.02)) if audio_in else None
        self.audio_gate = MLP(features, 2, gate_hidden, audio_dim) if audio_in else None
        self.eye_gate = MLP(features, 2, EYE_GATE_HIDDEN, 1) if use_blink else None
        density_in = features + landmark_dim + (audio_dim if audio_in else 0) + int(use_blink)
        self.density_net = MLP(density_in, layers, hidden, 1 + geo_features)
        self.direction = SHEncoding(levels=SH_LEVELS, implementation="torch")
        self.codes = FrameCodes(n_frames, latent_dim) if latent_dim else None
        self.colour_net = MLP(geo_features + landmark_dim + SH_LEVELS**2 + latent_dim, 2, hidden, 3, out_activation=nn.Sigmoid())

        self.sampler = CoarseToFine(coarse_samples, fine_samples)
        self.occupancy = OccupancyGrid(occupancy, bound) if occupancy else None
        self.renderer = VolumeRenderer()
        self.density_cache = DensityCache(density_cache, bound) if density_cache and occupancy else None
        # The mean landmarks of the frames trained on: the neutral face the density cache is sampled under.
        self.register_buffer("neutral_landmarks", torch.zeros(n_landmarks, 3))
        self.register_buffer("neutral_frames", torch.zeros(()))  # how many frames the mean is over (0: none yet)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs) -> None:
        # Runs trained before the neutral face was kept have none: they render with the coarse pass.
        for name in ("neutral_landmarks", "neutral_frames"):
            state_dict.setdefault(prefix + name, torch.zeros_like(getattr(self, name)))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    # -- the field ----------------------------------------------------------------------------

    def field(self, positions: Float[Tensor, "H N 3"], slot: Int[Tensor, "H"], frames: FrameConditions) -> FieldOutput:
        """Density, geometry features, landmark code and gates at points; `slot` picks each row's frame.

        Each row holds points on one ray (or a single point): the landmark coding culls by ray.
        """
        rays, count = positions.shape[:2]
        features = self.planes((positions / self.bound).reshape(-1, 3)).reshape(rays, count, self.planes.out_dim)
        code, coverage = self.coding(positions, frames.landmarks[slot])
        parts, ambient = [features, code], [coverage]
        if self.audio_gate is not None:
            assert frames.audio is not None
            gate = torch.sigmoid(self.audio_gate(features))
            parts.append(gate * frames.audio[slot][:, None, :])
            ambient.append(gate.mean(dim=-1))
        eye_gate = None
        if self.eye_gate is not None:
            assert frames.blink is not None
            eye_gate = torch.sigmoid(self.eye_gate(features))
            parts.append(eye_gate * frames.blink[slot][:, None, :])
        raw = self.density_net(torch.cat(parts, dim=-1))
        density = trunc_exp(raw[..., :1] + DENSITY_BIAS)
        return FieldOutput(density, raw[..., 1:], code, torch.stack(ambient, dim=-1), eye_gate)

    def colour(
        self, geo: Float[Tensor, "S geo"], code: Float[Tensor, "S dim"], directions: Float[Tensor, "S 3"], latent: Float[Tensor, "S latent"] | None
    ) -> Float[Tensor, "S 3"]:
        parts = [geo, code, self.direction(directions)]
        if latent is not None:
            parts.append(latent)
        return self.colour_net(torch.cat(parts, dim=-1))

    # -- rendering ----------------------------------------------------------------------------

    def forward(self, batch: PixelBatch, conditions: dict[str, Tensor]) -> dict[str, Tensor]:
        device = self.coding.log_scales.device
        batch = batch.to(device)
        frames = self.frame_conditions(batch, conditions)
        if self.training:
            self.observe_landmarks(frames.landmarks)
            if self.occupancy is not None:
                self.occupancy.step(lambda points: self.grid_density(points, frames))

        rays = rays_in_box(batch, self.bound, self.near, self.far)
        lookup = None
        if not self.training and self.occupancy is not None and self.occupancy.ready:
            rays = self.occupancy.clip(rays, self.chunk)
            if self.density_cache is not None and not torch.is_grad_enabled() and self.neutral_frames > 0:
                lookup = self.refreshed_cache()
        parts = [self.render_rays(rays.take(i, i + self.chunk), frames, lookup) for i in range(0, len(rays), self.chunk)]
        index = torch.cat([p.index for p in parts]) if parts else rays.index
        n_ambient = 1 + int(self.audio_gate is not None)

        def scatter(values: list[Tensor], shape: tuple[int, ...], fill: float = 0.0) -> Tensor:
            return at_pixels(index, values, batch.n_rays, shape, fill)

        rgb = scatter([p.rgb for p in parts], (3,))
        alpha = scatter([p.alpha for p in parts], ())
        ambient = scatter([p.ambient for p in parts], (n_ambient,))
        result = {
            "rgba": torch.cat([rgb, alpha[:, None]], dim=-1),
            "depth": scatter([p.depth for p in parts], (), self.far),
            "reg_ambient": ambient if n_ambient > 1 else ambient[:, 0],
            "reg_entropy": alpha_entropy(alpha),
        }
        if self.eye_gate is not None:
            result["reg_eye"] = scatter([p.eye for p in parts], ())
        return result

    def frame_conditions(self, batch: PixelBatch, conditions: dict[str, Tensor]) -> FrameConditions:
        device = batch.pixels.device
        audio = self.audio_net(conditions["audio"].to(device, torch.float32)) if self.audio_net is not None else None
        blink = conditions["blink"].to(device, torch.float32).reshape(-1, 1) if self.use_blink else None
        latent = self.codes(batch.frame_ids) if self.codes is not None else None
        return FrameConditions(conditions["landmarks"].to(device, torch.float32), audio, blink, latent)

    def grid_density(self, points: Float[Tensor, "P 3"], frames: FrameConditions) -> Float[Tensor, "P"]:
        """Density at points, each under the conditions of a random frame of the batch (occupancy updates)."""
        slot = torch.randint(frames.landmarks.shape[0], (points.shape[0],), device=points.device)
        return self.field(points[:, None, :], slot, frames).density[:, 0, 0]

    @torch.no_grad()
    def observe_landmarks(self, landmarks: Float[Tensor, "F L 3"]) -> None:
        """Fold a training batch's frames into the running mean of the landmarks (the neutral face)."""
        count = self.neutral_frames + landmarks.shape[0]
        self.neutral_landmarks += (landmarks.detach().sum(dim=0) - landmarks.shape[0] * self.neutral_landmarks) / count
        self.neutral_frames.copy_(count)

    def refreshed_cache(self) -> DensityCache:
        """The density cache, sampled from the current weights under neutral conditions: the mean
        landmarks of training, a zero audio code, open eyes."""
        assert self.density_cache is not None and self.occupancy is not None

        def density(points: Tensor) -> Tensor:
            audio = self.audio_net(points.new_zeros(1, self.audio_net.in_dim)) if self.audio_net is not None else None
            neutral = FrameConditions(self.neutral_landmarks[None], audio, points.new_zeros(1, 1) if self.use_blink else None, None)
            slot = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
            return self.field(points[:, None, :], slot, neutral).density[:, 0, 0]

        self.density_cache.refresh(weights_key(self, self.occupancy.density, self.neutral_landmarks), density, self.occupancy.occupied)
        return self.density_cache

    def render_rays(self, rays: BoxRays, frames: FrameConditions, lookup: DensityCache | None = None) -> RenderedRays:
        """With `lookup`, the fine samples are placed by its densities instead of the field's coarse pass."""
        bundle = ray_bundle(rays)
        if lookup is not None:
            samples = self.sampler.from_lookup(bundle, lookup)
        else:
            samples = self.sampler(bundle, lambda points, ray_ids: self.field(points, rays.slot[ray_ids], frames).density)
        out = self.field(samples.frustums.get_positions(), rays.slot, frames)
        weights = samples.get_weights(out.density)
        composite = self.renderer(samples, weights, self.sample_colours(rays, out, weights, frames))
        ambient = torch.sum(weights * out.ambient, dim=1)  # [H, k]: each term accumulated along the ray
        eye = along_rays(weights, out.eye_gate[..., 0]) if out.eye_gate is not None else composite.alpha.new_zeros(len(rays))
        return RenderedRays(rays.index, composite.rgb, composite.alpha, composite.depth, ambient, eye)

    def sample_colours(self, rays: BoxRays, out: FieldOutput, weights: Float[Tensor, "H N 1"], frames: FrameConditions) -> Float[Tensor, "H N 3"]:
        count, samples = weights.shape[:2]
        latent = frames.latent[rays.slot] if frames.latent is not None else None
        if torch.is_grad_enabled():

            def per_sample(x: Tensor) -> Tensor:
                return x[:, None, :].expand(count, samples, x.shape[-1]).reshape(count * samples, -1)

            rgb = self.colour(
                out.geo.reshape(count * samples, -1),
                out.code.reshape(count * samples, -1),
                per_sample(rays.directions),
                per_sample(latent) if latent is not None else None,
            )
            return rgb.reshape(count, samples, 3)
        keep = weights[..., 0] > WEIGHT_EPS  # [H, N]
        ray_of = torch.arange(count, device=weights.device)[:, None].expand(count, samples)[keep]
        rgb = weights.new_zeros(count, samples, 3)
        rgb[keep] = self.colour(out.geo[keep], out.code[keep], rays.directions[ray_of], latent[ray_of] if latent is not None else None)
        return rgb
