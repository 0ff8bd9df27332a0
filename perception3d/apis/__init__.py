"""perception3d.apis: high-level entry points (build a model, run inference)."""
from perception3d.apis.inference import inference_detector, init_model, load_points  # noqa: F401
