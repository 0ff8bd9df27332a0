"""Segmentors through the tools: bag inference writes a labelled PointCloud2, BEV pictures, train / test."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from perception3d.datasets.synthetic import generate_waymo_mini
from perception3d.datasets.synthetic.labels import generate_waymo_mini_labels

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(num_train=2, num_val=1, lidar_width=256, camera=False, workers=1)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg_tools")
    generate_waymo_mini(root, **SMALL)
    generate_waymo_mini_labels(root, workers=1)
    return root


def _opts(root):
    return {"prepare_data.root": str(root), "train_dataloader.dataset.dataset.data_root": str(root),
            "val_dataloader.dataset.data_root": str(root), "test_dataloader.dataset.data_root": str(root)}


def test_bag_inference_writes_a_labelled_pointcloud2_that_reads_back(mini, tmp_path):
    from perception3d.apis import inference_segmentor, init_model
    from perception3d.apis.bag_inference import infer_bag, make_demo_bag
    from perception3d.io.bags import BagReader
    from perception3d.io.pointcloud2 import pointcloud2_to_array
    bag = tmp_path / "demo.mcap"
    make_demo_bag(bag, scans=2, root=mini)
    torch.manual_seed(0)
    model = init_model(str(ROOT / "configs" / "minkunet_waymo_mini.py"))
    res = infer_bag(model, bag, "/points", out=tmp_path / "out.mcap", keep_input=False)
    assert res.processed == 2 and not res.skipped
    with BagReader(tmp_path / "out.mcap") as r:
        assert set(r.topics()) == {"/perception3d/labels"}
        msgs = list(r.messages(["/perception3d/labels"]))
    with BagReader(bag) as r:
        inputs = list(r.messages(["/points"]))
    assert len(msgs) == 2
    arr = pointcloud2_to_array(msgs[0][2] if len(msgs[0]) == 3 else msgs[0][-1])
    assert arr.dtype.names == ("x", "y", "z", "intensity", "label") and arr["label"].dtype == np.int32
    src = pointcloud2_to_array(inputs[0][2] if len(inputs[0]) == 3 else inputs[0][-1])
    assert arr.shape[0] == src.shape[0] and np.array_equal(arr["x"], src["x"])
    pts = np.stack([src[c] for c in ("x", "y", "z", "intensity")], 1).astype(np.float32)
    expect = inference_segmentor(model, pts)["labels"].numpy()
    assert np.array_equal(arr["label"], expect)                 # the labels are the model's, point for point
    assert (arr["label"] >= -1).all() and (arr["label"] < 22).all() and (arr["label"] == -1).any()  # > 32 m: −1
    line = json.loads((tmp_path / "out.mcap.jsonl").read_text().splitlines()[0])
    assert line["num_points"] == arr.shape[0] and sum(line["label_counts"].values()) == arr.shape[0]


def test_visualize_segmentor_draws_prediction_beside_ground_truth(mini, tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import visualize
    from perception3d.apis import init_model
    torch.manual_seed(0)
    model = init_model(str(ROOT / "configs" / "dsvt_seg_waymo_mini.py"))
    ckpt = tmp_path / "m.pth"
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    opts = [f"{k}={v}" for k, v in _opts(mini).items()]
    out = visualize.main([str(ROOT / "configs" / "dsvt_seg_waymo_mini.py"), str(ckpt), "--frames", "0",
                          "--out-dir", str(tmp_path / "vis"), "--cfg-options", *opts])
    png = Path(out[0]).read_bytes()
    assert out[0].endswith("val_0000_seg_bev.png") and png[:4] == b"\x89PNG" and len(png) > 20000
    with pytest.raises(ValueError, match=r"--frames \[5\].*1 frames"):
        visualize.main([str(ROOT / "configs" / "dsvt_seg_waymo_mini.py"), str(ckpt), "--frames", "5",
                        "--out-dir", str(tmp_path / "vis"), "--cfg-options", *opts])


@pytest.mark.slow
def test_train_and_test_tools_on_the_mini_segmentation_data(mini, tmp_path):
    opts = [f"{k}={v}" for k, v in _opts(mini).items()] + ["train_dataloader.batch_size=1",
                                                            f"val_evaluator.confusion_png={tmp_path}/cm.png",
                                                            f"test_evaluator.confusion_png={tmp_path}/cm2.png"]
    env = dict(__import__("os").environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cfg = str(ROOT / "configs" / "minkunet_waymo_mini.py")
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), cfg, "--work-dir", str(tmp_path / "wd"),
                        "--cfg-options", *opts], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    losses = [json.loads(line) for line in (tmp_path / "wd" / "losses.jsonl").read_text().splitlines()]
    assert "seg/mIoU" in r.stdout + r.stderr and (tmp_path / "cm.png").is_file()
    ckpt = sorted((tmp_path / "wd").glob("iter_*.pth"))[-1]
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "test.py"), cfg, str(ckpt), "--work-dir",
                        str(tmp_path / "wd2"), "--cfg-options", *opts], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "seg/IoU.road" in r.stdout + r.stderr and (tmp_path / "cm2.png").is_file() and losses
