"""tools/render.py end to end on the built-in default scene (ground-truth Gaussians → near-exact test views)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _render_main():
    spec = importlib.util.spec_from_file_location("render_tool", ROOT / "tools" / "render.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    from perception3d.rendering.default_scene import make_default_scene

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("defscene")
    make_default_scene(root, n_train=2, n_test=2, size=40)
    cfg = root / "cfg.py"
    cfg.write_text(f"data = dict(type='blender', root={str(root)!r}, background=(1.0, 1.0, 1.0))\n")
    return root


def test_render_ground_truth_ply_reproduces_test_views(scene_dir, tmp_path, capsys):
    res = _render_main()([str(scene_dir / "gt_gaussians.ply"), "--cameras", "test", "--config",
                          str(scene_dir / "cfg.py"), "--out", str(tmp_path / "r")])
    # the dataset was rendered from these Gaussians; only 8-bit quantisation separates them
    assert res["n_views"] == 2 and res["psnr"] > 40.0 and res["ssim"] > 0.99
    assert "PSNR" in capsys.readouterr().out
    for sub in ("rgb", "depth", "alpha"):
        files = sorted((tmp_path / "r" / sub).glob("*.png"))
        assert len(files) == 2
    a = iio.imread(tmp_path / "r" / "alpha" / "0000.png")
    assert a.shape == (40, 40) and a.max() == 255 and a.min() == 0  # object covers part of the frame
    assert (tmp_path / "r" / "metrics.json").is_file()


def test_render_orbit_video_and_camera_path(scene_dir, tmp_path):
    from perception3d.structures.cameras import orbit_path, save_camera_path

    main = _render_main()
    res = main([str(scene_dir / "gt_gaussians.ply"), "--cameras", "orbit", "--config", str(scene_dir / "cfg.py"),
                "--n-frames", "4", "--width", "32", "--height", "24", "--out", str(tmp_path / "o"),
                "--video", str(tmp_path / "o" / "orbit.gif")])
    frames = iio.imread(res["video"])
    assert frames.shape[:3] == (4, 24, 32)
    path = tmp_path / "path.json"
    save_camera_path(path, orbit_path((0, 0, 0), 3.0, 3), 30, 20, fov_y_deg=40.0)
    res = main([str(scene_dir / "gt_gaussians.ply"), "--cameras", str(path), "--out", str(tmp_path / "p")])
    assert res["n_views"] == 3 and "psnr" not in res
    rgb = iio.imread(tmp_path / "p" / "rgb" / "0001.png")
    assert rgb.shape == (20, 30, 3) and rgb.min() < 200  # the object is in view


def test_render_tool_errors(scene_dir, tmp_path):
    main = _render_main()
    with pytest.raises(ValueError, match="--config"):
        main([str(scene_dir / "gt_gaussians.ply"), "--cameras", "test", "--out", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="camera-path"):
        main([str(scene_dir / "gt_gaussians.ply"), "--cameras", "nope.txt", "--out", str(tmp_path / "x")])
