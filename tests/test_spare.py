"""SpaRe: a small DTU + synthetic scene pair in the benchmark's exact layout, evaluation numbers, the
submission ZIP checked file by file, and one message per kind of bad ZIP (library and CLI)."""

import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from perception3d.ops.image_quality import psnr, psnr_masked, ssim, ssim_masked
from perception3d.evaluation.spare import (check_submission, evaluate_submission, format_table, load_split,
                                           read_png, read_spare_scene, view_filename, write_submission)
from perception3d.rendering.scenes import read_dtu

ROOT = Path(__file__).resolve().parents[1]
SIZE = (64, 48)
SPLIT = {
    "scan63": {"input_views": [22, 25, 28], "test_views": [0, 13], "dataset": "DTU"},
    "Amplifier": {"input_views": [1, 2, 3], "test_views": [4, 9], "dataset": "SpaRe"},
}


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _img(seed, size=SIZE):
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / 7.0
    base = 0.5 + 0.3 * np.sin(xx + seed)[..., None] * np.cos(yy)[..., None] + 0.1 * rng.random((h, w, 3))
    return base.clip(0, 1).astype(np.float32)


def _write_png(path, img):
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))


@pytest.fixture()
def layout(tmp_path):
    """GT root: <scene>/<image>.png for inputs and test views, <scene>/mask/<image>.png, pos_XXX.txt cams."""
    gt = tmp_path / "gt"
    split_path = tmp_path / "Track1_split_development.json"
    split_path.write_text(json.dumps(SPLIT))
    K = np.array([[60.0, 0, 32], [0, 60.0, 24], [0, 0, 1]])
    for s, e in SPLIT.items():
        for i in e["input_views"] + e["test_views"]:
            _write_png(gt / s / view_filename(e["dataset"], i), _img(i + len(s)))
            P = K @ np.hstack([np.eye(3), np.array([[0.1 * i], [0.0], [3.0]])])
            np.savetxt(gt / s / f"pos_{i + 1:03d}.txt", P)
        for i in e["test_views"]:
            m = np.zeros((SIZE[1], SIZE[0], 3), np.float32)
            m[10:30, 15:50] = 1.0
            _write_png(gt / s / "mask" / view_filename(e["dataset"], i), m)
    return gt, split_path


def _renders(gt, noise=0.05):
    out = {}
    for s, e in SPLIT.items():
        out[s] = {}
        for i in e["test_views"]:
            g = read_png(gt / s / view_filename(e["dataset"], i))
            rng = np.random.default_rng(i)
            out[s][i] = np.clip(g + noise * rng.standard_normal(g.shape), 0, 1).astype(np.float32)
    return out


def test_split_and_names(layout, tmp_path):
    gt, split_path = layout
    sp = load_split(split_path)
    assert sp["scan63"].test_views == [0, 13] and sp["Amplifier"].dataset == "SpaRe"
    assert view_filename("DTU", 13) == "rect_014_3_r5000.png"  # the docs' example: index 13 -> pos_014
    assert view_filename("SpaRe", 0) == "cam_001_3_0000.png"
    # a per-scene JSON
    (tmp_path / "scan63.json").write_text(json.dumps(SPLIT["scan63"]))
    assert list(load_split(tmp_path / "scan63.json")) == ["scan63"]
    (tmp_path / "bad.json").write_text(json.dumps({"scan1": {"input_views": [1]}}))
    with pytest.raises(ValueError, match="test_views"):
        load_split(tmp_path / "bad.json")
    # the DTU reader reads the same layout with the split's views
    e = sp["scan63"]
    scene = read_dtu(gt / "scan63", train_ids=e.input_views, test_ids=e.test_views, dataset=e.dataset)
    assert len(scene) == 5 and [scene.names[i] for i in scene.test_ids] == ["rect_001_3_r5000", "rect_014_3_r5000"]
    assert torch.allclose(scene.cameras.centers[scene.test_ids[1]], torch.tensor([-1.3, 0.0, -3.0]), atol=1e-5)
    syn = read_dtu(gt / "Amplifier", train_ids=[1, 2, 3], test_ids=[4, 9], dataset="SpaRe")
    assert syn.names[0] == "cam_002_3_0000" and syn.image(0).shape == (48, 64, 3)
    # as in the challenge data: test images absent -> their cameras are still read, images are None
    for i in SPLIT["Amplifier"]["test_views"]:
        (gt / "Amplifier" / view_filename("SpaRe", i)).unlink()
    sc = read_spare_scene(gt, "Amplifier", split_path)
    assert sc.train_ids == [0, 1, 2] and sc.test_ids == [3, 4] and sc.image_paths[3] is None
    assert sc.test_cameras.names == ["cam_005_3_0000", "cam_010_3_0000"]
    with pytest.raises(FileNotFoundError, match="cam_002_3_0000.png"):
        (gt / "Amplifier" / "cam_002_3_0000.png").unlink()
        read_spare_scene(gt, "Amplifier", split_path)


def test_evaluate_and_submission(layout, tmp_path):
    gt, split_path = layout
    renders = _renders(gt)
    zp = tmp_path / "sub" / "submission.zip"
    names = write_submission(renders, split_path, zp, size=SIZE)
    assert sorted(names) == ["Amplifier/cam_005_3_0000.png", "Amplifier/cam_010_3_0000.png",
                             "scan63/rect_001_3_r5000.png", "scan63/rect_014_3_r5000.png"]
    assert [p.name for p in zp.parent.iterdir()] == ["submission.zip"]  # no temporary left behind
    with zipfile.ZipFile(zp) as zf:
        assert sorted(zf.namelist()) == sorted(names)  # no folder entries, no enclosing folder
        for s, e in SPLIT.items():
            for i in e["test_views"]:
                data = zf.read(f"{s}/{view_filename(e['dataset'], i)}")
                assert data[:8] == b"\x89PNG\r\n\x1a\n"
                img = read_png(data)
                assert img.shape == (48, 64, 3)
                assert np.abs(img - renders[s][i]).max() <= 0.5 / 255 + 1e-6  # 8-bit rounding only
    assert check_submission(zp, split_path, size=SIZE) == []

    res = evaluate_submission(zp, gt, split_path)
    assert res["problems"] == [] and len(res["images"]) == 4
    mask = np.zeros((48, 64), bool)
    mask[10:30, 15:50] = True
    for r in res["images"]:
        e = SPLIT[r["scene"]]
        g = read_png(gt / r["file"])
        p = read_png(zipfile.ZipFile(zp).read(r["file"]))
        assert abs(r["psnr"] - psnr(p, g)) < 1e-9 and abs(r["ssim"] - ssim(p, g)) < 1e-9
        assert abs(r["psnr_m"] - psnr_masked(p, g, mask)) < 1e-9
        assert abs(r["ssim_m"] - ssim_masked(p, g, mask)) < 1e-9
        assert r["lpips"] is None and r["lpips_m"] is None  # no weights: not computed
        assert 24 < r["psnr"] < 28  # noise sigma 0.05 -> ~26 dB
    dtu = [r for r in res["images"] if r["dataset"] == "DTU"]
    assert abs(res["datasets"]["DTU"]["psnr"] - np.mean([r["psnr"] for r in dtu])) < 1e-9
    assert abs(res["scenes"]["scan63"]["ssim_m"] - np.mean([r["ssim_m"] for r in dtu])) < 1e-9
    table = format_table(res)
    assert "scan63 (DTU)" in table and "== SpaRe ==" in table and "LPIPS: not computed" in table
    # the same from a folder, and the CLI
    folder = tmp_path / "folder"
    zipfile.ZipFile(zp).extractall(folder)
    res2 = evaluate_submission(folder, gt, split_path)
    assert res2["datasets"] == res["datasets"]
    out = tmp_path / "res.json"
    assert _tool("spare_eval").main([str(zp), "--gt", str(gt), "--split", str(split_path), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["scenes"]["Amplifier"]["n"] == 2
    # CLI: renders folder named by index -> zip -> check
    idx_dir = tmp_path / "by_index"
    for s, views in renders.items():
        for i, im in views.items():
            _write_png(idx_dir / s / f"{i}.png", im)
    tool = _tool("spare_submit")
    z2 = tmp_path / "cli.zip"
    args = ["--split", str(split_path), "--size", "64", "48"]
    assert tool.main(["--renders", str(idx_dir), "--out", str(z2)] + args) == 0
    assert tool.main(["--check", str(z2)] + args) == 0
    assert sorted(zipfile.ZipFile(z2).namelist()) == sorted(names)


def test_submission_from_renderer_and_lpips(layout, tmp_path):
    """A renderer that projects a known world point paints one pixel: the submission has it where the
    test camera (pos_XXX.txt at the image size) says, and LPIPS columns appear when weights are given."""
    from perception3d.evaluation.image_metrics import LPIPS
    from perception3d.evaluation.spare import submission_from_renderer

    gt, split_path = layout
    seen = []

    def render(name, scene, idx, cam):
        seen.append((name, idx, len(scene.train_ids), cam.width))
        uv, _ = cam.project([[0.0, 0.0, 5.0]])
        img = np.zeros((cam.height, cam.width, 3), np.float32)
        u, v = (int(x) for x in uv[0, 0].floor().tolist())
        img[v, u] = 1.0
        return img

    zp = tmp_path / "r.zip"
    submission_from_renderer(gt, split_path, render, zp, size=SIZE)
    assert seen == [("scan63", 0, 3, 64), ("scan63", 13, 3, 64), ("Amplifier", 4, 3, 64), ("Amplifier", 9, 3, 64)]
    img = read_png(zipfile.ZipFile(zp).read("scan63/rect_014_3_r5000.png"))
    # P = K [I | (1.3, 0, 3)] with f = 60, c = (32, 24): X = (0, 0, 5) -> (60 * 1.3 / 8 + 32, 24) = (41.75, 24)
    assert img[24, 41].sum() == 3.0 and img.sum() == 3.0
    net = LPIPS()  # untrained weights: only checks that the columns are filled
    res = evaluate_submission(zp, gt, split_path, lpips_net=net)
    assert all(r["lpips"] is not None and r["lpips_m"] is not None for r in res["images"])
    assert "LPIPS: not computed" not in format_table(res)


def test_write_submission_refuses_bad_input(layout, tmp_path):
    gt, split_path = layout
    renders = _renders(gt)
    del renders["scan63"][13]
    with pytest.raises(ValueError, match=r"missing test views \[13\]"):
        write_submission(renders, split_path, tmp_path / "x.zip", size=SIZE)
    renders = _renders(gt)
    renders["Amplifier"][4] = renders["Amplifier"][4][:40]
    with pytest.raises(ValueError, match="64x48"):
        write_submission(renders, split_path, tmp_path / "x.zip", size=SIZE)
    assert not (tmp_path / "x.zip").exists() and list(tmp_path.glob("*.tmp")) == []


def test_real_size_submission(tmp_path):
    split = {"scan8": {"input_views": [1], "test_views": [2], "dataset": "DTU"}}
    img = np.zeros((1200, 1600, 3), np.float32)
    img[:, :800] = 0.5
    zp = tmp_path / "s.zip"
    write_submission({"scan8": {2: torch.from_numpy(img)}}, split, zp)
    assert zipfile.ZipFile(zp).namelist() == ["scan8/rect_003_3_r5000.png"]
    assert check_submission(zp, split) == []
    assert check_submission(zp, split, size=(800, 600)) == [
        "scan8/rect_003_3_r5000.png: wrong size 1600x1200 (expected 800x600)"]


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_bad_zips_each_get_their_message(layout, tmp_path):
    gt, split_path = layout
    good = tmp_path / "good.zip"
    write_submission(_renders(gt), split_path, good, size=SIZE)
    entries = {n: zipfile.ZipFile(good).read(n) for n in zipfile.ZipFile(good).namelist()}
    chk = lambda z: check_submission(z, split_path, size=SIZE)  # noqa: E731
    a5 = "Amplifier/cam_005_3_0000.png"

    e = dict(entries)
    del e[a5]
    assert chk(_zip(tmp_path / "missing.zip", e)) == [f"{a5}: missing (test view 4 of scene 'Amplifier')"]

    e = dict(entries, **{"Amplifier/cam_002_3_0000.png": entries[a5]})
    assert chk(_zip(tmp_path / "extra.zip", e)) == [
        "Amplifier/cam_002_3_0000.png: extra view 1 (not a test view of scene 'Amplifier')"]

    import cv2

    small = cv2.imencode(".png", np.zeros((10, 20, 3), np.uint8))[1].tobytes()
    e = dict(entries, **{a5: small})
    assert chk(_zip(tmp_path / "size.zip", e)) == [f"{a5}: wrong size 20x10 (expected 64x48)"]

    rgba = cv2.imencode(".png", np.zeros((48, 64, 4), np.uint8))[1].tobytes()
    deep = cv2.imencode(".png", np.zeros((48, 64, 3), np.uint16))[1].tobytes()
    assert chk(_zip(tmp_path / "rgba.zip", dict(entries, **{a5: rgba}))) == [
        f"{a5}: 8-bit PNG with 4 channel(s) (expected 8-bit RGB)"]
    assert chk(_zip(tmp_path / "deep.zip", dict(entries, **{a5: deep}))) == [
        f"{a5}: 16-bit PNG with 3 channel(s) (expected 8-bit RGB)"]

    e = dict(entries)
    e["scan63/rect_014_3_r5000.PNG.png"] = e.pop("scan63/rect_014_3_r5000.png")
    probs = chk(_zip(tmp_path / "name.zip", e))
    assert len(probs) == 2 and "wrong file name" in probs[0] and "missing" in probs[1]
    e = dict(entries)
    e["Amplifier/rect_005_3_r5000.png"] = e.pop(a5)  # DTU name in a synthetic scene
    assert "wrong file name" in chk(_zip(tmp_path / "name2.zip", e))[0]

    e = {f"results/{n}": d for n, d in entries.items()}
    probs = chk(_zip(tmp_path / "enclosing.zip", e))
    assert probs == ["enclosing folder 'results/': the scene folders must be at the root of the archive"]

    e = dict(entries, **{"scan63/notes.txt": b"hello"})
    assert chk(_zip(tmp_path / "nonpng.zip", e)) == [
        "scan63/notes.txt: not a PNG file (only .png renders belong in the archive)"]

    e = dict(entries, **{a5: entries[a5][:100]})
    probs = chk(_zip(tmp_path / "truncated.zip", e))
    assert len(probs) == 1 and probs[0].startswith(f"{a5}: unreadable PNG")
    e = dict(entries, **{a5: b"JFIF not a png at all"})
    assert chk(_zip(tmp_path / "jpeg.zip", e)) == [f"{a5}: unreadable PNG (not a PNG file (bad signature))"]

    e = dict(entries, **{"scan99/rect_001_3_r5000.png": entries[a5]})
    assert chk(_zip(tmp_path / "scene.zip", e)) == [
        "scan99/rect_001_3_r5000.png: folder 'scan99' is not a scene of the split"]

    (tmp_path / "notzip.zip").write_bytes(b"plain text")
    assert "not a valid ZIP archive" in chk(tmp_path / "notzip.zip")[0]

    # all at once: every problem listed, CLI exits non-zero and prints each
    e = {f"results/{n}": d for n, d in entries.items() if n != a5}
    e["results/scan63/readme.md"] = b"x"
    bad = _zip(tmp_path / "many.zip", e)
    probs = chk(bad)
    assert len(probs) == 3
    tool = _tool("spare_submit")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = tool.main(["--check", str(bad), "--split", str(split_path), "--size", "64", "48"])
    assert rc == 1
    for p in probs:
        assert p in buf.getvalue()


def test_png_paths_are_normalised_to_8bit_rgb(tmp_path):
    import cv2

    split = {"scan8": {"input_views": [0], "test_views": [1], "dataset": "DTU"}}
    rgba16 = np.zeros((48, 64, 4), np.uint16)
    rgba16[..., 2] = 65535  # red in BGR(A) order
    rgba16[..., 3] = 65535
    cv2.imwrite(str(tmp_path / "r.png"), rgba16)
    zp = tmp_path / "s.zip"
    write_submission({"scan8": {1: tmp_path / "r.png"}}, split, zp, size=SIZE)
    assert check_submission(zp, split, size=SIZE) == []
    img = read_png(zipfile.ZipFile(zp).read("scan8/rect_002_3_r5000.png"))
    assert np.allclose(img[0, 0], [1.0, 0.0, 0.0])
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="bad.png"):
        write_submission({"scan8": {1: tmp_path / "bad.png"}}, split, zp, size=SIZE)
