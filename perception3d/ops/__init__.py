"""perception3d.ops: geometry kernels that are not sparse-tensor ops (rotated IoU, NMS, points in boxes)."""
from perception3d.ops.iou3d import (box_diou_3d_axis_aligned, box_iou_3d, box_iou_3d_aligned, box_iou_bev,
                                    box_iou_bev_aligned, polygon_clip_area)
from perception3d.ops.nms import batched_nms_rotated, circle_nms, nms_rotated
from perception3d.ops.points_in_boxes import points_in_boxes, points_in_boxes_count, points_in_boxes_mask

__all__ = ["box_diou_3d_axis_aligned", "box_iou_3d", "box_iou_3d_aligned", "box_iou_bev", "box_iou_bev_aligned",
           "polygon_clip_area", "batched_nms_rotated", "circle_nms", "nms_rotated", "points_in_boxes",
           "points_in_boxes_count", "points_in_boxes_mask"]
