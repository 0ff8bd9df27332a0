"""perception3d.evaluation."""
from perception3d.evaluation import cls_seg  # noqa: F401,E402  (top-1 / mAcc / mIoU metrics)
from perception3d.evaluation.waymo import waymo_evaluate  # noqa: F401,E402  (Waymo mAP/mAPH L1/L2)
from perception3d.evaluation.kitti import kitti_evaluate  # noqa: F401,E402  (KITTI AP|R40)
from perception3d.evaluation.det_metrics import KittiMetric, WaymoMetric  # noqa: F401,E402  (mmengine metrics)
from perception3d.evaluation.image_metrics import lpips  # noqa: F401,E402
from perception3d.ops.image_quality import psnr, psnr_masked, ssim, ssim_masked  # noqa: F401,E402
from perception3d.evaluation.spare import check_submission, evaluate_submission, write_submission  # noqa: F401,E402
from perception3d.evaluation.nuscenes import nuscenes_evaluate  # noqa: F401,E402  (nuScenes mAP / NDS)
