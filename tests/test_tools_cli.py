"""Every tool on bad user input: exit code 2 and ONE line ``<tool>.py: error: ...`` naming the file; ``--debug``
keeps the traceback (perception3d.cli.run_cli). The tools run in this process (their ``main`` through
``run_cli``) except for two real subprocess runs, so the whole file takes seconds."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from perception3d.cli import CheckpointError, ConfigError, check_checkpoint, load_config, one_line, run_cli

ROOT = Path(__file__).resolve().parents[1]
DET_CFG = str(ROOT / "configs" / "dsvt_waymo_mini.py")
SNN_CFG = str(ROOT / "configs" / "e3dsnn_t_shapes.py")
GS_CFG = str(ROOT / "configs" / "gs_default.py")
TOOLS = sorted(p.stem for p in (ROOT / "tools").glob("*.py"))


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(name: str, argv: list[str], capsys) -> tuple[int, str]:
    """(exit code, stderr) of ``run_cli(tool.main, argv)``."""
    with pytest.raises(SystemExit) as ex:
        run_cli(_tool(name).main, [str(a) for a in argv])
    return ex.value.code, capsys.readouterr().err


def _assert_one_line_error(name: str, rc: int, err: str, *needles: str) -> str:
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ": error: " in ln]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"{name}.py: error: "), line
    for n in needles:
        assert n in line, (n, line)
    return line


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    good = d / "good.pth"
    torch.save({"state_dict": {"w": torch.arange(4000.0)}, "meta": {"iter": 1}}, good)
    raw = good.read_bytes()
    (d / "truncated.pth").write_bytes(raw[: len(raw) // 2])
    flipped = bytearray(raw)
    i = raw.index(b"data/0") + 200  # inside the tensor bytes: torch.load itself would not notice
    flipped[i] ^= 0xFF
    (d / "damaged.pth").write_bytes(bytes(flipped))
    (d / "empty.pth").write_bytes(b"")
    (d / "text.pth").write_text("not a checkpoint\n")
    (d / "syntax_cfg.py").write_text("model = dict(type='X'\n")
    (d / "raising_cfg.py").write_text("default_scope = 'perception3d'\nmodel = dict(type=undefined_name)\n")
    gs_work = d / "gs_work"
    gs_work.mkdir()
    (gs_work / "ckpt_latest.pt").write_bytes(raw[:100])
    return d


# ---------------------------------------------------------------- the shared mechanism


def test_check_checkpoint_accepts_a_good_file_and_names_every_bad_one(files):
    assert check_checkpoint(files / "good.pth") == files / "good.pth"
    # torch.load does not see the flipped byte; the CRC check does
    torch.load(files / "damaged.pth", weights_only=False)
    for name, what in [("truncated.pth", "corrupt"), ("damaged.pth", "CRC"), ("empty.pth", "empty"),
                       ("text.pth", "corrupt"), ("nope.pth", "no such file")]:
        with pytest.raises(FileNotFoundError if name == "nope.pth" else CheckpointError, match=what) as ex:
            check_checkpoint(files / name)
        assert str(files / name) in str(ex.value)


def test_load_config_names_the_file(files):
    for name, what in [("nope.py", "no such file"), ("syntax_cfg.py", "SyntaxError"),
                       ("raising_cfg.py", "undefined_name")]:
        with pytest.raises(FileNotFoundError if name == "nope.py" else ConfigError, match=what) as ex:
            load_config(files / name)
        assert str(files / name) in str(ex.value)
    with pytest.raises(KeyError, match="no_such_key"):
        load_config(DET_CFG, {"train_cfg.no_such_key": 1})


def test_one_line_flattens_messages():
    assert one_line(KeyError("a\n  b")) == "a b"
    assert one_line(ValueError("")) == "ValueError"


def test_run_cli_exit_codes(capsys):
    def ok(argv):
        return {"x": 1}

    def checker(argv):
        return 1

    def bad(argv):
        raise ValueError("data/x.bin: 7 floats\nis not whole")

    def bug(argv):
        raise RuntimeError("a bug")

    for fn, code in [(ok, 0), (checker, 1), (bad, 2)]:
        with pytest.raises(SystemExit) as ex:
            run_cli(fn, [], prog="t.py")
        assert ex.value.code == code
    assert capsys.readouterr().err.strip() == \
        "t.py: error: data/x.bin: 7 floats is not whole (--debug shows the traceback)"
    with pytest.raises(ValueError):  # --debug: the exception itself, with its traceback
        run_cli(bad, ["--debug"], prog="t.py")
    with pytest.raises(RuntimeError):  # a bug is never turned into a one-liner
        run_cli(bug, [], prog="t.py")
    seen = []
    with pytest.raises(SystemExit):
        run_cli(lambda a: seen.append(a), ["x", "--debug", "y"], prog="t.py")
    assert seen == [["x", "y"]]  # --debug is taken out before the tool parses its arguments


def test_every_tool_goes_through_run_cli():
    for name in TOOLS:
        src = (ROOT / "tools" / f"{name}.py").read_text()
        main_block = src[src.index('if __name__ == "__main__":'):]
        assert "run_cli(main)" in main_block, name


# ---------------------------------------------------------------- each tool on bad input

CONFIG_TOOLS = {  # tool → argv with {cfg} and {ckpt}
    "train": ["{cfg}", "--resume", "{ckpt}"],
    "test": ["{cfg}", "{ckpt}"],
    "visualize": ["{cfg}", "{ckpt}"],
    "infer_bag": ["{cfg}", "{ckpt}", "--in", "nope.mcap", "--topic", "/points"],
    "export_onnx": ["{cfg}", "{ckpt}"],
    "snn_energy": ["{cfg}", "{ckpt}"],
}
GOOD_CFG = {"snn_energy": SNN_CFG}


@pytest.mark.parametrize("name", sorted(CONFIG_TOOLS))
@pytest.mark.parametrize("case", ["missing_config", "bad_config", "truncated_ckpt", "damaged_ckpt", "missing_ckpt"])
def test_config_tools_on_bad_input(name, case, files, capsys):
    cfg = {"missing_config": files / "nope.py", "bad_config": files / "syntax_cfg.py"}.get(
        case, GOOD_CFG.get(name, DET_CFG))
    ckpt = {"truncated_ckpt": files / "truncated.pth", "damaged_ckpt": files / "damaged.pth",
            "missing_ckpt": files / "nope.pth"}.get(case, files / "good.pth")
    argv = [a.format(cfg=cfg, ckpt=ckpt) for a in CONFIG_TOOLS[name]]
    rc, err = _run(name, argv, capsys)
    named = str(cfg) if case.endswith("config") else str(ckpt)
    line = _assert_one_line_error(name, rc, err, named)
    assert re.search({"missing_config": "no such file", "bad_config": "SyntaxError", "truncated_ckpt": "corrupt",
                      "damaged_ckpt": "corrupt", "missing_ckpt": "no such file"}[case], line), line


def test_bad_cfg_option_and_raising_config(files, capsys):
    rc, err = _run("test", [DET_CFG, files / "good.pth", "--cfg-options", "model.no_such_key=1"], capsys)
    _assert_one_line_error("test", rc, err, "no_such_key")
    rc, err = _run("train", [files / "raising_cfg.py"], capsys)
    _assert_one_line_error("train", rc, err, str(files / "raising_cfg.py"), "undefined_name")


def test_render_and_train_gs_on_bad_input(files, capsys):
    for model, what in [(files / "truncated.pth", "corrupt"), (files / "nope.pt", "no such file"),
                        (files / "text.pth", "corrupt"), (files / "nope.ply", "no such file")]:
        rc, err = _run("render", [model, "--out", files / "r"], capsys)
        _assert_one_line_error("render", rc, err, str(model), what)
    bad_ply = files / "bad.ply"
    bad_ply.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nproperty float x\nend_header\n\0")
    rc, err = _run("render", [bad_ply, "--out", files / "r"], capsys)
    _assert_one_line_error("render", rc, err, str(bad_ply))
    rc, err = _run("render", [files / "good.pth", "--config", files / "syntax_cfg.py"], capsys)
    _assert_one_line_error("render", rc, err, str(files / "syntax_cfg.py"), "SyntaxError")
    rc, err = _run("render", [files / "good.pth", "--out", files / "r"], capsys)  # a checkpoint of something else
    _assert_one_line_error("render", rc, err, str(files / "good.pth"), "not a Gaussian-splatting checkpoint")
    rc, err = _run("train_gs", [files / "syntax_cfg.py"], capsys)
    _assert_one_line_error("train_gs", rc, err, str(files / "syntax_cfg.py"))
    rc, err = _run("train_gs", [GS_CFG, "--work-dir", files / "gs_work", "--resume"], capsys)
    _assert_one_line_error("train_gs", rc, err, str(files / "gs_work" / "ckpt_latest.pt"), "corrupt")


def test_data_and_spare_tools_on_bad_input(files, capsys, tmp_path):
    rc, err = _run("create_data", ["kitti", "--root", tmp_path / "nope"], capsys)
    _assert_one_line_error("create_data", rc, err, str(tmp_path / "nope"), "no such folder")
    rc, err = _run("make_demo_bag", ["--out", tmp_path / "d.mcap", "--scans", "0"], capsys)
    _assert_one_line_error("make_demo_bag", rc, err, "scans must be")
    split = tmp_path / "split.json"
    split.write_text('{"scan24": {"input_views": [1], "test_views": [2], "dataset": "dtu"}}')
    garbage = tmp_path / "sub.zip"
    garbage.write_bytes(b"not a zip")
    rc, err = _run("spare_eval", [garbage, "--gt", tmp_path, "--split", split], capsys)
    _assert_one_line_error("spare_eval", rc, err, str(garbage), "not a readable ZIP")
    rc, err = _run("spare_eval", [tmp_path, "--gt", tmp_path, "--split", tmp_path / "nope.json"], capsys)
    _assert_one_line_error("spare_eval", rc, err, str(tmp_path / "nope.json"))
    rc, err = _run("spare_submit", ["--renders", tmp_path, "--split", tmp_path / "nope.json", "--out", "x.zip"],
                   capsys)
    _assert_one_line_error("spare_submit", rc, err, str(tmp_path / "nope.json"))
    bad_split = tmp_path / "bad.json"
    bad_split.write_text("{not json")
    rc, err = _run("spare_submit", ["--check", garbage, "--split", bad_split], capsys)
    _assert_one_line_error("spare_submit", rc, err, str(bad_split))


# ---------------------------------------------------------------- real processes: exit code and --debug


def test_subprocess_exit_code_and_debug_traceback(files):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PERCEPTION3D_DEBUG", None)
    cmd = [sys.executable, str(ROOT / "tools" / "test.py"), DET_CFG, str(files / "truncated.pth")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith(f"test.py: error: checkpoint {files / 'truncated.pth'} "
                                                       f"is corrupt")
    assert "Traceback" not in r.stderr
    r = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr and "CheckpointError" in r.stderr
    assert zipfile.is_zipfile(files / "good.pth")
