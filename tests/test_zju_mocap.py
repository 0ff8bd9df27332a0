"""ZJU-MoCap reader on a tiny sequence written by the test in the released layout (2 cameras, 2 frames, 32 × 24
images): a known vertex projects to the pixel computed by hand (mm → m, OpenCV → house +0.5 px), masks from
mask/ and mask_cihp/ are OR-ed, SMPL parameters and vertices read back, and bad sequences get errors naming the file."""

import pickle

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from perception3d.rendering.human.zju_mocap import read_zju_mocap

W, H = 32, 24
VERTEX = np.array([0.1, 0.2, 0.5])


def _write_seq(root, n_cams_listed=2, mask_size=(H, W), skip_vertices=None, old_names=False):
    K0 = np.array([[20.0, 0, 15.5], [0, 20.0, 11.5], [0, 0, 1]])
    K1 = np.array([[25.0, 0, 16.0], [0, 24.0, 12.0], [0, 0, 1]])
    R1 = np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]])  # looks along world +x
    cams = {"K": [K0, K1], "D": [np.zeros((5, 1)), np.zeros((5, 1))],
            "R": [np.eye(3), R1], "T": [np.array([[0.0], [0.0], [3000.0]]), np.array([[100.0], [-50.0], [2000.0]])]}
    ims = []
    for f in range(2):
        names = [(f"Camera ({c + 1})/CoreView_Camera_({c + 1})_{f:04d}_x.jpg" if old_names
                  else f"Camera_B{c + 1}/{f:06d}.jpg") for c in range(2)]
        for c, n in enumerate(names):
            (root / n).parent.mkdir(parents=True, exist_ok=True)
            img = np.full((H, W, 3), 40 * (c + 1) + f, np.uint8)
            iio.imwrite(root / n, img, quality=100)
            rel = n[:-4] + ".png"
            for d, rows in (("mask", slice(0, 10)), ("mask_cihp", slice(8, 14))):
                m = np.zeros(mask_size, np.uint8)
                m[rows, 3:7] = 1                                      # ZJU masks hold 0 / 1
                (root / d / rel).parent.mkdir(parents=True, exist_ok=True)
                iio.imwrite(root / d / rel, m)
        ims.append({"ims": names[:n_cams_listed] if n_cams_listed < 2 else names + ["extra.jpg"] * (n_cams_listed - 2),
                    "kpts2d": None})
    np.save(root / "annots.npy", {"cams": cams, "ims": ims})
    (root / "new_vertices").mkdir()
    (root / "new_params").mkdir()
    for f in range(2):
        if f == skip_vertices:
            continue
        v = np.zeros((6890, 3), np.float32)
        v[0] = VERTEX + [0, 0, f]
        np.save(root / "new_vertices" / f"{f}.npy", v)
        params = {"poses": np.full((1, 72), 0.01 * f), "Rh": np.array([[0.1, 0, 0]]), "Th": np.array([[0, 0, f]]),
                  "shapes": np.zeros((1, 10))}
        np.save(root / "new_params" / f"{f}.npy", params)


@pytest.mark.parametrize("old_names", [False, True])
def test_zju_projection_masks_bodies(tmp_path, old_names):
    _write_seq(tmp_path, old_names=old_names)
    seq = read_zju_mocap(tmp_path)
    assert len(seq) == 2 and seq.num_cameras == 2 and (seq.cameras.width, seq.cameras.height) == (W, H)
    assert seq.frame_ids == [0, 1]
    assert seq.cameras.names == (["Camera (1)", "Camera (2)"] if old_names else ["Camera_B1", "Camera_B2"])
    # by hand: camera 0 sees (0.1, 0.2, 0.5) m at (0.1, 0.2, 3.5) m (T = 3000 mm): u = 20·0.1/3.5 + 15.5 + 0.5,
    # v = 20·0.2/3.5 + 11.5 + 0.5; camera 1: R·X + T = (−0.5, 0.2, 0.1) + (0.1, −0.05, 2.0) = (−0.4, 0.15, 2.1)
    uv, depth = seq.cameras.project(torch.tensor(VERTEX[None], dtype=torch.float32))
    np.testing.assert_allclose(uv[0, 0].numpy(), [2 / 3.5 + 16.0, 4 / 3.5 + 12.0], atol=1e-5)
    np.testing.assert_allclose(uv[1, 0].numpy(), [25 * -0.4 / 2.1 + 16.5, 24 * 0.15 / 2.1 + 12.5], atol=1e-5)
    np.testing.assert_allclose(depth[:, 0].numpy(), [3.5, 2.1], atol=1e-6)
    np.testing.assert_allclose(seq.vertices(1)[0].numpy(), VERTEX + [0, 0, 1], atol=1e-6)
    # masks: rows 0–9 (mask/) OR rows 8–13 (mask_cihp/), columns 3–6
    m = seq.mask(1, 0)
    want = np.zeros((H, W), bool)
    want[0:14, 3:7] = True
    np.testing.assert_array_equal(m.numpy(), want)
    img = seq.image(1, 1)
    assert img.shape == (H, W, 3) and abs(float(img.mean()) - 81 / 255) < 2 / 255
    p = seq.params(1)
    assert p["poses"].shape == (72,) and float(p["poses"][5]) == pytest.approx(0.01)
    np.testing.assert_allclose(p["Th"].numpy(), [0, 0, 1])
    # a camera / frame subset
    sub = read_zju_mocap(tmp_path, cameras=[1], frames=[1])
    assert sub.num_cameras == 1 and sub.frame_ids == [1]
    torch.testing.assert_close(sub.cameras.viewmats[0], seq.cameras.viewmats[1])


def test_zju_undistort_moves_pixels(tmp_path):
    _write_seq(tmp_path)
    ann = np.load(tmp_path / "annots.npy", allow_pickle=True).item()
    ann["cams"]["D"][0] = np.array([[-0.3], [0.0], [0.0], [0.0], [0.0]])
    np.save(tmp_path / "annots.npy", ann)
    seq = read_zju_mocap(tmp_path)
    raw, und = seq.mask(0, 0, undistort=False), seq.mask(0, 0)
    assert raw.shape == und.shape and not torch.equal(raw, und)
    np.testing.assert_allclose(seq.dist[0], [-0.3, 0, 0, 0, 0])


def test_zju_bad_sequences(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    _write_seq(a, n_cams_listed=3)
    with pytest.raises(ValueError, match=r"annots\.npy: frame 0 lists 3 images but there are 2 cameras"):
        read_zju_mocap(a)
    b = tmp_path / "b"
    b.mkdir()
    _write_seq(b, mask_size=(H // 2, W // 2))
    with pytest.raises(ValueError, match=r"mask.*000000\.png: mask is 16x12, the images are 32x24"):
        read_zju_mocap(b)
    c = tmp_path / "c"
    c.mkdir()
    _write_seq(c, skip_vertices=1)
    with pytest.raises(FileNotFoundError, match=r"new_vertices/1\.npy.*no body vertices"):
        read_zju_mocap(c)
    assert read_zju_mocap(c, frames=[0]).frame_ids == [0]
    with pytest.raises(FileNotFoundError, match="annots.npy"):
        read_zju_mocap(tmp_path / "nowhere")
    # an annots.npy whose pickle names anything else than arrays and containers is refused
    import os

    d = tmp_path / "d"
    d.mkdir()
    with open(d / "annots.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        f.write(pickle.dumps(os.getcwd))
    with pytest.raises(ValueError, match=r"annots\.npy: refusing to load"):
        read_zju_mocap(d)
