"""The renderer contract's rays agree with the dataset conventions: a ray through a landmark's pixel
passes through that landmark in canonical head space (checked on the synthetic subject's ground truth)."""

import numpy as np
import torch

from thkit.core.pixels import PixelBatch
from thkit.data.layout import Dataset
from thkit.data.synth import generate


def test_rays_through_landmark_pixels_hit_the_3d_landmarks(tmp_path):
    dataset = Dataset(generate(tmp_path / "subject", seconds=1.0, size=64, seed=2, progress=False))
    frames = [0, 12, 24]
    poses = torch.from_numpy(np.asarray(dataset.array("poses", ground_truth=True)[frames]))
    points2d = torch.from_numpy(np.asarray(dataset.array("landmarks2d", ground_truth=True)[frames])).float()
    points3d = torch.from_numpy(np.asarray(dataset.array("landmarks3d", ground_truth=True)[frames])).float()
    intrinsics = dataset.meta.intrinsics
    batch = PixelBatch(
        pixels=points2d.reshape(-1, 2),
        slot=torch.arange(3).repeat_interleave(68),
        frame_ids=torch.tensor(frames),
        camera_to_world=poses.float(),
        intrinsics=torch.tensor([intrinsics.focal, intrinsics.cx, intrinsics.cy]),
        height=64,
        width=64,
    )
    origins, directions = batch.rays()
    targets = points3d.reshape(-1, 3)
    along = ((targets - origins) * directions).sum(-1, keepdim=True)
    miss = (origins + along * directions - targets).norm(dim=-1)
    assert (along > 0).all()  # landmarks are in front of the camera
    assert miss.max() < 1e-3  # in decimetres: 0.1 mm


def test_full_frames_enumerates_pixel_centres():
    batch = PixelBatch.full_frames(torch.eye(4).repeat(2, 1, 1), torch.tensor([10.0, 2.0, 1.5]), height=3, width=4)
    assert batch.n_rays == 24
    assert batch.pixels[:5].tolist() == [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [3.5, 0.5], [0.5, 1.5]]
    assert batch.slot.tolist() == [0] * 12 + [1] * 12
    origins, directions = batch.rays()
    centre = directions[batch.pixels.eq(torch.tensor([1.5, 1.5])).all(-1)][0]
    assert torch.allclose(centre, torch.tensor([-0.05, 0.0, -1.0]) / torch.tensor([-0.05, 0.0, -1.0]).norm(), atol=1e-6)
