"""Import shims at the old module paths (left when modules moved): each warns DeprecationWarning naming the new
path and gives the very object that lives there; nothing in the package, the tools or the benchmarks imports
through one (statically, and by importing every module with those warnings turned into errors)."""
import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# old module → new module (the whole module moved)
MODULES = {
    "perception3d.rendering.cameras": "perception3d.structures.cameras",
    "perception3d.engine.data": "perception3d.datasets.loading",
}
# (old module, name) → the module that now defines the name
NAMES = {
    ("perception3d.rendering.gaussians", "load_ply"): "perception3d.io.ply",
    ("perception3d.rendering.gaussians", "save_ply"): "perception3d.io.ply",
    ("perception3d.evaluation.image_metrics", "psnr"): "perception3d.ops.image_quality",
    ("perception3d.evaluation.image_metrics", "ssim"): "perception3d.ops.image_quality",
    ("perception3d.evaluation.image_metrics", "psnr_masked"): "perception3d.ops.image_quality",
    ("perception3d.evaluation.image_metrics", "ssim_masked"): "perception3d.ops.image_quality",
    ("perception3d.evaluation.image_metrics", "mask_bbox"): "perception3d.ops.image_quality",
    ("perception3d.models.backbones.dsvt_input_layer", "DynamicVoxelPFN"): "perception3d.models.voxel_encoders",
    ("perception3d.models.detectors.centerpoint", "Det3DDataPreprocessor"): "perception3d.models.data_preprocessor",
    ("perception3d.datasets.kitti_raw", "points_in_boxes_count"): "perception3d.ops.points_in_boxes",
}


@pytest.mark.parametrize("old,new", sorted(MODULES.items()))
def test_module_shim_warns_naming_the_new_path(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        mod = importlib.import_module(old)
    target = importlib.import_module(new)
    assert mod.__all__ == target.__all__ and all(getattr(mod, n) is getattr(target, n) for n in target.__all__)


@pytest.mark.parametrize("old,name", sorted(NAMES))
def test_name_shim_warns_naming_the_new_path(old, name):
    new = NAMES[(old, name)]
    mod = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"import {name} from {new.replace('.', chr(92) + '.')}"):
        obj = getattr(mod, name)
    assert obj is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError):
        getattr(mod, name + "_no_such_name")


def test_every_shim_is_pinned_here_and_removed_ones_are_gone():
    from perception3d import deprecation

    for m in list(MODULES) + [o for o, _ in NAMES]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            importlib.import_module(m)
    pinned = dict(MODULES)
    for (old, name), new in NAMES.items():
        pinned.setdefault(old, {})[name] = new
    assert deprecation.MOVED == pinned
    # re-exports no user needs were removed: a writer whose name once had the other argument order, a private helper
    import perception3d.datasets.mmdet3d_info as info
    import perception3d.rendering.scenes as scenes

    assert "atomic_write_bytes" not in info.__all__ and not hasattr(scenes, "_rotmat_to_qvec")


def _imports(path: Path) -> list:
    """(module, name or None) of every import in a file, relative imports resolved."""
    rel = path.relative_to(ROOT).with_suffix("")
    pkg = list(rel.parts[:-1])                      # the package a relative import starts from
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
            out += [(base, None)] + [(base, a.name) for a in node.names] + [(f"{base}.{a.name}", None)
                                                                             for a in node.names]
    return out


def test_nothing_imports_through_a_shim():
    bad = []
    for folder in ("perception3d", "tools", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            mod = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            if mod in MODULES or path.name == "deprecation.py":
                continue
            for m, name in _imports(path):
                if m in MODULES or (m, name) in NAMES:
                    bad.append(f"{path.relative_to(ROOT)}: {m}{'.' + name if name else ''}")
    assert not bad, "imports through a shim (use the new path):\n" + "\n".join(bad)


@pytest.mark.slow
def test_importing_every_module_meets_no_shim():
    """Every module of the package imported in a fresh interpreter with the shims' warnings as errors."""
    code = (
        "import importlib, pkgutil, warnings, perception3d\n"
        "warnings.filterwarnings('error', message='.* is deprecated: ', category=DeprecationWarning)\n"
        f"skip = {sorted(MODULES)!r}\n"
        "for m in pkgutil.walk_packages(perception3d.__path__, 'perception3d.'):\n"
        "    if m.name not in skip:\n"
        "        importlib.import_module(m.name)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
