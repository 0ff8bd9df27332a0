"""Human bodies for the human radiance fields: an SMPL loader and forward pass, a procedural stand-in body with
the same interface, and the ZJU-MoCap multi-view reader."""

from .body_model import (SMPL_JOINT_NAMES, SMPL_PARENTS, BodyModel, BodyModelData, BodyOutput,  # noqa: F401
                         load_body_model, read_smpl_file, rodrigues)
from .template import build_template  # noqa: F401
from .zju_mocap import ZJUMoCap, read_zju_mocap  # noqa: F401
from .canonical import canonical_bounds, canonical_sparse_tensor  # noqa: F401
from .synthetic import ensure_synthetic_humans, synthetic_gt_mesh  # noqa: F401
