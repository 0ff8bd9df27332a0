"""The README's commands work as written.

Fast (default run): every file the README names exists, every config it names loads, every ``tools/*.py`` it
names answers ``--help``, and every ``--option`` a README command passes is one that tool accepts.
Slow (``-m slow``): a fresh ``git clone`` of HEAD in a temporary folder, a virtual environment on top of the
installed packages, then each README command that needs no external data run in README order, with its exit
code and time; template commands (``CONFIG``, ``CKPT``, ``work_dirs/NAME/epoch_N.pth``) get the main job's
config and checkpoint. Full-schedule trainings (tens of minutes each) run only with ``P3D_README_FULL=1``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: commands that read data the user must download first
EXTERNAL = ("data/waymo ", "data/waymo/", "data/kitti", "submission.zip", "split.json", "/path/to/")
#: commands that run a full training schedule (tens of minutes on a CPU): only with P3D_README_FULL=1 (the main job
#: itself runs once; its other seeds are long)
LONG = ("MAIN_EPOCHS= ", "MAIN_SEED=", "pytest -m slow", "tools/train.py", "dist_train.sh")
TEMPLATE_WORDS = ("CONFIG", "CKPT", "NAME", "epoch_N")


def readme_commands(text: str | None = None) -> list[str]:
    """The shell commands of the README in order: each line of its ``bash`` code blocks (comments dropped) and
    each inline code span that starts with ``python``, ``bash`` or ``VAR= bash``."""
    text = README.read_text() if text is None else text
    cmds: list[str] = []
    pos = 0
    for m in re.finditer(r"```bash\n(.*?)```", text, re.S):
        cmds += _inline(text[pos:m.start()])
        block = re.sub(r"\\\n\s*", " ", m.group(1))          # a backslash continuation is one command
        for line in block.splitlines():
            line = re.sub(r"(^|\s+)#.*$", "", line).strip()
            if line:
                cmds.append(line)
        pos = m.end()
    return cmds + _inline(text[pos:])


def _inline(text: str) -> list[str]:
    return [c for c in re.findall(r"`([^`\n]+)`", text)
            if re.match(r"^([A-Z_]+=\S* )?(python|bash) ", c) and not c.startswith("python -c")]


def kind(cmd: str) -> str:
    """'external' (needs downloaded data), 'long' (a full training), 'template' (placeholders) or 'run'."""
    if any(e in cmd + " " for e in EXTERNAL):
        return "external"
    if any(x in cmd for x in LONG):
        return "long"
    if any(re.search(rf"\b{w}\b", cmd) for w in TEMPLATE_WORDS):
        return "template"
    return "run"


def _tool_invocations(cmd: str):
    """(tool name, argument list) for each ``python tools/X.py ...`` in a (possibly chained) command."""
    for part in re.split(r"&&|\|\||;", cmd):
        words = shlex.split(part)
        for i, w in enumerate(words):
            if re.fullmatch(r"tools/\w+\.py", w):
                yield Path(w).stem, words[i + 1:]


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"readme_tool_{name}", ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _help(name: str, args: list[str]) -> str:
    """The tool's ``--help`` text (of its sub-command when it has one, e.g. create_data.py waymo)."""
    sub = [args[0]] if name == "create_data" and args and not args[0].startswith("-") else []
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as ex:
        _load_tool(name).main(sub + ["--help"])
    assert ex.value.code == 0, f"tools/{name}.py --help exited {ex.value.code}"
    return out.getvalue()


# ---------------------------------------------------------------- fast checks


def test_readme_has_commands_of_every_kind():
    cmds = readme_commands()
    kinds = {kind(c) for c in cmds}
    assert {"run", "template", "external", "long"} <= kinds, kinds
    assert "bash scripts/install.sh && bash scripts/main_job.sh" in cmds
    # the parser itself: comments dropped, inline spans found
    md = "x `python tools/a.py --b` y\n```bash\npython tools/c.py 1  # note\n# only a comment\n```\n"
    assert readme_commands(md) == ["python tools/a.py --b", "python tools/c.py 1"]


def test_readme_paths_exist():
    text = README.read_text()
    named = set(re.findall(r"\b((?:tools|scripts|configs|bench|data/scripts|docs)/[\w./-]+\.(?:py|sh|md))", text))
    named |= set(re.findall(r"\]\(([\w./-]+\.md)\)", text))
    assert len(named) > 15
    missing = sorted(p for p in named if not (ROOT / p).is_file())
    assert not missing, f"README names files that do not exist: {missing}"


def test_readme_configs_load():
    from perception3d.cli import load_config

    configs = sorted(set(re.findall(r"\bconfigs/[\w]+\.py", README.read_text())))
    assert len(configs) >= 4
    for c in configs:
        cfg = load_config(ROOT / c)
        assert cfg.get("default_scope") == "perception3d", c


def test_readme_tool_commands_use_real_options():
    seen = set()
    for cmd in readme_commands():
        for name, args in _tool_invocations(cmd):
            assert (ROOT / "tools" / f"{name}.py").is_file(), f"{cmd}: no tools/{name}.py"
            help_text = _help(name, args)
            for opt in (a.split("=")[0] for a in args if a.startswith("--")):
                assert re.search(rf"(^|[\s,\[]){re.escape(opt)}\b", help_text), \
                    f"README command `{cmd}` passes {opt}, which tools/{name}.py does not accept"
            seen.add(name)
    assert {"train", "test", "visualize", "train_gs", "render", "infer_bag", "make_demo_bag"} <= seen, seen


# ---------------------------------------------------------------- the README on a fresh clone


def _substitute(cmd: str, clone: Path) -> str:
    """Fill a template command with the main job's config and checkpoint."""
    ckpt_file = clone / "work_dirs" / "main_dsvt_waymo_mini" / "last_checkpoint"
    ckpt = ckpt_file.read_text().strip() if ckpt_file.is_file() else "MISSING_CHECKPOINT"
    cmd = re.sub(r"work_dirs/NAME/epoch_N\.pth", ckpt, cmd)
    cmd = re.sub(r"\bCKPT\b", ckpt, cmd)
    return re.sub(r"\bCONFIG\b", "configs/dsvt_waymo_mini.py", cmd)


@pytest.mark.slow
def test_readme_commands_on_a_fresh_clone(tmp_path):
    """Runs every README command that needs no external data, in order, in a fresh clone (≈ 20-40 min on a
    2-core CPU: the main job, the default test suite, 3DGS training, bag inference). Prints a table."""
    full = os.environ.get("P3D_README_FULL") == "1"
    clone, venv = tmp_path / "clone", tmp_path / "venv"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    env = dict(os.environ, PATH=f"{venv / 'bin'}:{os.environ['PATH']}", VIRTUAL_ENV=str(venv))
    env.pop("PYTHONPATH", None)
    rows, failed = [], []
    for cmd in readme_commands((clone / "README.md").read_text()):
        k = kind(cmd)
        if k == "external" or (k == "long" and not full):
            rows.append((cmd, k, None, 0.0))
            continue
        run = _substitute(cmd, clone) if k == "template" else cmd
        t0 = time.time()
        r = subprocess.run(run, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=7200)
        rows.append((run, k, r.returncode, time.time() - t0))
        if r.returncode != 0:
            failed.append(f"`{run}` exited {r.returncode}:\n{(r.stdout + r.stderr)[-1500:]}")
    print("\nREADME commands on a fresh clone (exit code, seconds):")
    for run, k, rc, secs in rows:
        print(f"  {'skipped (' + k + ')' if rc is None else f'rc {rc}':>20}  {secs:7.1f} s  {run}")
    assert sum(rc == 0 for _, _, rc, _ in rows) >= 8
    assert not failed, "\n\n".join(failed)
