"""perception3d.apis: high-level entry points (build a model, run inference)."""
from perception3d.apis.inference import inference_detector, init_model, load_points  # noqa: F401
from perception3d.apis.bag_inference import infer_bag, make_demo_bag  # noqa: F401,E402  (offline inference on bags)
from perception3d.apis.inference import inference_segmentor, is_segmentor  # noqa: F401,E402  (point labels)
