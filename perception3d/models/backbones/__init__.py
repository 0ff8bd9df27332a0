"""perception3d.models.backbones."""
from perception3d.models.backbones import bev, subm_resnet  # noqa: F401,E402  (register BEV / SubM-ResNet)
from perception3d.models.backbones import e3dsnn  # noqa: F401,E402  (register E-3DSNN backbones)
from perception3d.models.backbones import dsvt  # noqa: F401,E402  (register DSVT)
from perception3d.models.backbones import minkunet  # noqa: F401,E402  (register MinkUNetBackbone)
from perception3d.models.backbones import dsvt_seg  # noqa: F401,E402  (register DSVTSegBackbone)
