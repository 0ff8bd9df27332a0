"""TransHuman (Pan et al., ICCV 2023): generalisable human rendering from a few views through a transformer over
the painted canonical body. Parts: :mod:`.painting` (painted SparseTensor, tokens), :mod:`.transhe` (TransHE),
:mod:`.dparf` (DPaRF), :mod:`.fdi` (FDI and the radiance heads), :mod:`.volume` (rays, volume rendering),
:mod:`.model` (the network), :mod:`.trainer` (training / evaluation, registered as ``"transhuman"``),
:mod:`.metrics` (the authors' protocol), :mod:`.nerf_baseline` (the per-scene NeRF baseline)."""

from .model import HumanContext, HumanInput, TransHuman  # noqa: F401
