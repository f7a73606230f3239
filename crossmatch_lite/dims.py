"""Whether a run is 2D or 3D: asked here, and answered everywhere else from here.

A dataset's number of spatial axes decides the rest of a run: the network (`arch`: the
UNet for images, the VNet for volumes), the views (whole slices, or patches of volumes,
`views.views_for`), channel dropout of feature maps (Dropout2d or Dropout3d), how much
memory a step needs, whether evaluation slides a window, and how TensorBoard pictures a
case. The config, the views, the features, the run machinery and the trainer ask a `Dims`
instead of looking at a dataset name, an architecture or a tensor's rank themselves.

No torch at import: the config imports this module, and tools that only read configs
start without torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Every dataset the data layer reads, with its number of spatial axes.
DATASET_DIMS = {"toy_acdc": 2, "toy_isic": 2, "acdc": 2, "isic2018": 2, "folder": 2, "toy_la": 3, "la": 3,
                "pancreas": 3, "fives": 2}


@dataclass(frozen=True)
class Dims:
    """The spatial axes of a run's data: 2 (images (N, C, H, W)) or 3 (volumes (N, C, X, Y, Z))."""
    spatial_dims: int

    @classmethod
    def of_dataset(cls, name: str) -> "Dims":
        return cls(DATASET_DIMS[name])

    @classmethod
    def of_tensor(cls, t) -> "Dims":
        """Of a batched tensor (B, C, *spatial)."""
        return cls(t.dim() - 2)

    @property
    def volumetric(self) -> bool:
        """The one question: 3D volumes (True) or 2D images (False)."""
        return self.spatial_dims == 3

    @property
    def name(self) -> str:
        return "3D" if self.volumetric else "2D"

    @property
    def arch(self) -> str:
        """The network for data of these axes (model.arch)."""
        return "vnet" if self.volumetric else "unet"

    def pixels(self, size: int, patch) -> int:
        """Pixels (voxels) of one training input: a size x size image or a patch of a volume."""
        return math.prod(patch) if self.volumetric else size ** 2

    def channel_dropout(self, f, rate: float, training: bool = True):
        """Dropout of whole channels of a feature map f (B, C, *spatial): Dropout3d or Dropout2d."""
        import torch.nn.functional as F

        return (F.dropout3d if self.volumetric else F.dropout2d)(f, rate, training=training)
