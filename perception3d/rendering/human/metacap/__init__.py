"""MetaCap (Sun et al., "MetaCap: Meta-learning Priors from Multi-View Imagery for Sparse-view Human Performance
Capture and Rendering", ECCV 2024; sunshinnnn/metacap): a canonical-space NeuS field of a human on sparse voxel
grids, meta-learned with Reptile over frames (and subjects) so that a few views of a new frame fine-tune it
quickly; occlusion handling by the body model; marching-cubes meshes.

    field.py    the canonical SDF + colour field on SparseTensor voxel grids
    frames.py   a posed body, its space canonicalisation, images and rays of a frame
    neus.py     NeuS volume rendering of posed-space rays through the canonical field
    learner.py  losses, Reptile meta-learning, fine-tuning, occlusion handling
    mesh.py     marching-cubes extraction, Chamfer distance
    trainer.py  the ``metacap`` rendering method (tools/train_human.py) and checkpoint rendering (tools/render.py)
"""

from .field import CanonicalField, SparseVoxelEncoding  # noqa: F401
from .frames import FrameBody, FrameData, load_frame, pose_body  # noqa: F401
from .learner import finetune, occlusion_proxies, reptile  # noqa: F401
from .mesh import chamfer_distance, extract_mesh  # noqa: F401
from .neus import render_image, render_rays  # noqa: F401
