"""perception3d.datasets."""
from perception3d.datasets.synthetic.writer import ensure_waymo_mini, generate_waymo_mini  # noqa: F401
from perception3d.datasets import modelnet40, semantickitti, synthetic_shapes  # noqa: F401,E402  (E-3DSNN datasets)
from perception3d.datasets.det3d_dataset import Det3DDataset  # noqa: F401,E402  (registers in DATASETS)
from perception3d.datasets.waymo_v2 import WaymoV2Segment, convert_waymo_v2  # noqa: F401,E402
from perception3d.datasets.mmdet3d_info import load_mmdet3d_infos, save_infos  # noqa: F401,E402
from perception3d.datasets.kitti_raw import create_kitti_infos, read_kitti_frame  # noqa: F401,E402
from perception3d.datasets import transforms  # noqa: F401,E402  (registers the LiDAR augmentations in TRANSFORMS)
from perception3d.datasets.gt_database import DataBaseSampler, create_gt_database  # noqa: F401,E402
from perception3d.datasets import transforms_multimodal  # noqa: F401,E402  (LiDAR + camera augmentations in TRANSFORMS)
from perception3d.datasets.nuscenes import NuScenesDataset  # noqa: F401,E402  (registers in DATASETS)
from perception3d.datasets import loading  # noqa: F401,E402  (ResumableSampler, SeededDataset, det3d_collate)
from perception3d.datasets import prepare  # noqa: F401,E402  (prepare_data functions in FUNCTIONS)
from perception3d.datasets.multiview import MultiViewDet3DDataset  # noqa: F401,E402  (registers in DATASETS)
from perception3d.datasets import waymo_seg  # noqa: F401,E402  (WaymoSegDataset, prepare_waymo_mini_seg)
