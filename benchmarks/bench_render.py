"""Renderer speed on this machine: triplane-nerf frames/s and training rays/s, nerfstudio's nerfacto for scale.

Run: python benchmarks/bench_render.py [--threads N] [--steps 200] [--sizes 128,256,512] [--head demo] [--no-nerfacto]

Everything uses the renderers' default params (`--head demo`: the head's params in examples/demo.yaml,
the sizes `thkit demo` trains), on the synthetic subject (2 s, 128 px, its real cameras).

- **render**: one whole frame (every pixel; eval mode, `torch.inference_mode`) at each size, in frames/s.
  Twice: *untrained* (no occupancy grid yet, so every ray crossing the head's box is sampled in full,
  and the hazy untrained field never stops a ray early) and *trained* for `--steps` steps (the grid
  skips empty space, and the density cache places the samples: the state a real run renders in),
  then trained again without the density cache (the field's own coarse pass places them, as in
  training). Sampling the density cache, once per trained renderer, is timed on its own. The
  torso-2d layer behind the head is timed on its own.
- **train**: forward + backward + Adam step on 4096 random rays of the subject's frames, in rays/s;
  the occupancy grid refresh every 16 steps is included.
- **nerfacto**: nerfstudio's `NerfactoModel` (implementation "torch", its default sizes, the head's box
  as scene box without contraction, near/far = the box's depth range, camera optimiser off) on the
  same 4096 rays, training step (its own losses) and forward only. Its LPIPS metric is replaced by a
  stub, because constructing it downloads AlexNet weights (there is no network here); the metric is
  only used for evaluation images, never in `get_outputs` or the losses.

Target (issue): >= 5 frames/s at 256 x 256 on this CPU. The machine may be shared: the load average
is printed with the results. One torch thread by default: with other work on the cores, torch's
threads wait on each other (two threads gave erratic figures, up to 5x lower, on the shared 2-core
machine); pass --threads on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np

RAYS = 4096
SUBJECT_SIZE = 128
ENTROPY_WEIGHT = 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's own choice)")
    parser.add_argument("--steps", type=int, default=200, help="training steps before the 'trained' renders")
    parser.add_argument("--sizes", default="128,256,512", help="frame sizes to render")
    parser.add_argument("--head", choices=("default", "demo"), default="default", help="head params: defaults, or examples/demo.yaml's")
    parser.add_argument("--no-nerfacto", action="store_true", help="skip the nerfacto comparison")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        data = Subject(Path(folder) / "subject")
        head, torso = build_renderers(len(data.poses), head_params(args.head))
        rows = [render_row("untrained", head, data, sizes)]
        train_seconds = train(head, data, args.steps)
        cache_seconds = sample_density_cache(head)
        rows.append(render_row(f"trained {args.steps} steps", head, data, sizes))
        cache, head.density_cache = head.density_cache, None
        rows.append(render_row(f"trained {args.steps} steps, coarse pass (no density cache)", head, data, sizes))
        head.density_cache = cache
        torso_row = render_torso(torso, data, sizes)
        ours_train = RAYS * args.steps / train_seconds
        ours_eval = forward_rays_per_second(head, data)
        nerfacto = None if args.no_nerfacto else time_nerfacto(data)

    load = os.getloadavg()[0]
    print(f"torch threads: {torch.get_num_threads()}, load average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores")
    print(f"head params: {args.head}; density cache sampled in {cache_seconds:.2f} s (once per trained renderer)\n")
    print("| triplane-nerf, whole frame | " + " | ".join(f"{s}x{s}" for s in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, fps in rows + [torso_row]:
        print(f"| {name} | " + " | ".join(f"{f:.2f} frames/s" for f in fps) + " |")
    print("\nTarget: >= 5 frames/s at 256x256 on this CPU.\n")
    print("| 4096 rays of the subject | training (fwd+bwd+Adam) | forward only |")
    print("|---|---|---|")
    print(f"| triplane-nerf ({args.head} params) | {ours_train:,.0f} rays/s | {ours_eval:,.0f} rays/s |")
    if nerfacto is not None:
        print(f"| nerfacto (torch, defaults) | {nerfacto[0]:,.0f} rays/s | {nerfacto[1]:,.0f} rays/s |")
        print(f"| ratio triplane-nerf / nerfacto | {ours_train / nerfacto[0]:.1f}x | {ours_eval / nerfacto[1]:.1f}x |")


class Subject:
    """The synthetic subject's frames, cameras and head-over-background targets, as tensors."""

    def __init__(self, root: Path) -> None:
        import torch

        from thkit.data.layout import Dataset
        from thkit.data.synth import generate

        generate(root, seconds=2, size=SUBJECT_SIZE, progress=False)
        dataset = Dataset(root)
        meta = dataset.meta
        self.poses = torch.tensor(np.asarray(dataset.array("poses")))
        self.intrinsics = torch.tensor([meta.intrinsics.focal, meta.intrinsics.cx, meta.intrinsics.cy])
        frames = torch.tensor(np.stack([dataset.frame(i) for i in range(len(dataset))]) / 255.0, dtype=torch.float32)
        heads = torch.tensor(np.stack([dataset.mask(i) for i in range(len(dataset))]) == 2)
        self.background = torch.tensor(dataset.background / 255.0, dtype=torch.float32).reshape(-1, 3)
        self.targets = torch.where(heads[..., None], frames, self.background.reshape(frames.shape[1:])).reshape(len(dataset), -1, 3)
        generator = torch.Generator().manual_seed(0)
        self.audio = torch.randn(len(dataset), 64, generator=generator)  # stands in for a fusion's code
        self.generator = generator

    def random_rays(self, count: int = RAYS, frames: int = 4):
        """`count` random pixels of `frames` random frames: (batch, conditions, target rgb, background rgb)."""
        import torch

        from thkit.core.pixels import PixelBatch

        ids = torch.randint(0, len(self.poses), (frames,), generator=self.generator)
        pixel = torch.randint(0, SUBJECT_SIZE**2, (count,), generator=self.generator)
        slot = torch.randint(0, frames, (count,), generator=self.generator)
        xy = torch.stack([pixel % SUBJECT_SIZE, pixel // SUBJECT_SIZE], dim=-1).float() + 0.5
        batch = PixelBatch(xy, slot, ids, self.poses[ids], self.intrinsics, SUBJECT_SIZE, SUBJECT_SIZE)
        conditions = {"audio": self.audio[ids], "pose": self.poses[ids]}
        return batch, conditions, self.targets[ids[slot], pixel], self.background[pixel]

    def full_frame(self, size: int, index: int = 0):
        """Every pixel of frame `index` seen by the subject's camera scaled to `size` px."""
        import torch

        from thkit.core.pixels import PixelBatch

        intrinsics = self.intrinsics * size / SUBJECT_SIZE
        batch = PixelBatch.full_frames(self.poses[index : index + 1], intrinsics, size, size, torch.tensor([index]))
        return batch, {"audio": self.audio[index : index + 1], "pose": self.poses[index : index + 1]}


def head_params(which: str) -> dict:
    """The head's params: {} for the defaults, or the `head` node's params of examples/demo.yaml."""
    if which == "default":
        return {}
    import yaml

    spec = yaml.safe_load((Path(__file__).parent.parent / "examples" / "demo.yaml").read_text())
    return spec["nodes"]["head"]["params"]


def build_renderers(n_frames: int, params: dict):
    import torch

    from thkit.core import Frames, GraphContext, Pose, Seq
    from thkit.plugins.renderers.torso_2d import Torso2d
    from thkit.plugins.renderers.triplane_nerf import TriplaneNerf

    fps = Fraction(25)
    context = GraphContext(video_fps=fps, image_size=SUBJECT_SIZE, n_frames=n_frames)
    torch.manual_seed(0)
    head = TriplaneNerf(TriplaneNerf.Params(**params), {"audio": Seq(64, fps), "pose": Pose(fps)}, context).build()
    torso = Torso2d(Torso2d.Params(), {"head": Frames(SUBJECT_SIZE, SUBJECT_SIZE, fps), "pose": Pose(fps)}, context).build()
    return head, torso


def train(head, data: Subject, steps: int) -> float:
    """Train `steps` steps of RAYS rays (rgb over the plate + alpha entropy); returns the seconds taken."""
    import torch

    from thkit.render.nerf.compose import over_background

    head.train()
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-2, betas=(0.9, 0.99), eps=1e-15)
    start = time.perf_counter()
    for _ in range(steps):
        batch, conditions, target, background = data.random_rays()
        out = head(batch, conditions)
        loss = (over_background(out["rgba"], background) - target).square().mean() + ENTROPY_WEIGHT * out["reg_entropy"].mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return time.perf_counter() - start


def sample_density_cache(head) -> float:
    """Seconds to sample the trained head's density cache (the first render without gradient does it)."""
    import torch

    head.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        head.refreshed_cache()
    return time.perf_counter() - start


def seconds_per_call(function, repeats: int) -> float:
    function()  # warm-up: allocations and lazy initialisation
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def render_row(name: str, head, data: Subject, sizes: list[int]) -> tuple[str, list[float]]:
    import torch

    head.eval()
    fps = []
    for size in sizes:
        batch, conditions = data.full_frame(size)
        with torch.inference_mode():
            fps.append(1.0 / seconds_per_call(lambda: head(batch, conditions), 1 if size > 256 else 3))
    return f"head, {name}", fps


def render_torso(torso, data: Subject, sizes: list[int]) -> tuple[str, list[float]]:
    import torch

    torso.eval()
    fps = []
    for size in sizes:
        batch, conditions = data.full_frame(size)
        conditions = {"head": torch.zeros(size * size, 4), "pose": conditions["pose"]}
        with torch.inference_mode():
            fps.append(1.0 / seconds_per_call(lambda: torso(batch, conditions), 3))
    return "torso-2d alone", fps


def forward_rays_per_second(head, data: Subject) -> float:
    import torch

    head.eval()
    batch, conditions, _, _ = data.random_rays()
    with torch.inference_mode():
        return RAYS / seconds_per_call(lambda: head(batch, conditions), 3)


def time_nerfacto(data: Subject) -> tuple[float, float]:
    """(training rays/s, forward rays/s) of nerfstudio's nerfacto on RAYS rays of the subject."""
    import torch
    import torchmetrics.image.lpip as lpip

    class NoLpips(torch.nn.Module):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__()

    lpip.LearnedPerceptualImagePatchSimilarity = NoLpips  # constructing the real one downloads AlexNet
    from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
    from nerfstudio.cameras.rays import RayBundle
    from nerfstudio.data.scene_box import SceneBox
    from nerfstudio.models.nerfacto import NerfactoModel, NerfactoModelConfig

    bound = 1.4
    depth = float(data.poses[:, 2, 3].mean())
    config = NerfactoModelConfig(
        implementation="torch",
        disable_scene_contraction=True,
        near_plane=depth - bound,
        far_plane=depth + bound,
        background_color="black",
        camera_optimizer=CameraOptimizerConfig(mode="off"),
    )
    torch.manual_seed(0)
    model = NerfactoModel(config, scene_box=SceneBox(aabb=torch.tensor([[-bound] * 3, [bound] * 3])), num_train_data=len(data.poses))
    batch, _, target, background = data.random_rays()
    origins, directions = batch.rays()

    def bundle() -> RayBundle:
        count = origins.shape[0]
        return RayBundle(
            origins=origins,
            directions=directions,
            pixel_area=torch.ones(count, 1),
            camera_indices=batch.frame_ids[batch.slot][:, None],
            nears=torch.full((count, 1), config.near_plane),
            fars=torch.full((count, 1), config.far_plane),
        )

    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2, eps=1e-15)
    image = {"image": target}

    def step() -> None:
        outputs = model.get_outputs(bundle())
        loss = sum(model.get_loss_dict(outputs, image, model.get_metrics_dict(outputs, image)).values())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    model.train()
    train_seconds = seconds_per_call(step, 2)
    model.eval()
    with torch.inference_mode():
        forward_seconds = seconds_per_call(lambda: model.get_outputs(bundle()), 2)
    return RAYS / train_seconds, RAYS / forward_seconds


if __name__ == "__main__":
    main()
