"""The STDPose network, its losses, ablation variants and ViTPose checkpoint loading.

Public API: `ModelConfig`, `build_model(cfg) -> STDPose`, `STDPose.forward / encode_frames / aggregate`,
`StdposeLoss(cfg)`, `load_vitpose_checkpoint(model_or_backbone, path) -> LoadReport`. See docs/model.md.
"""

from stdpose.model.backbone import VisionTransformer
from stdpose.model.checkpoint import LoadReport, load_vitpose_checkpoint
from stdpose.model.checks import ModelInputError
from stdpose.model.config import BACKBONE_SIZES, VARIANTS, ModelConfig, Switches
from stdpose.model.dam import DynamicAwareMask, modified_sigmoid
from stdpose.model.head import HeatmapHead, SimpleFusionHead
from stdpose.model.losses import StdposeLoss, heatmap_mse, mi_proxy
from stdpose.model.stda import PoseAggregationBlock, SpatioTemporalDynamicsAggregation
from stdpose.model.stdpose import STDPose, build_model
from stdpose.model.stre import TemporalFeatureFusion, TemporalKeypointsSynthesis

__all__ = [
    "BACKBONE_SIZES",
    "VARIANTS",
    "DynamicAwareMask",
    "HeatmapHead",
    "LoadReport",
    "ModelConfig",
    "ModelInputError",
    "PoseAggregationBlock",
    "STDPose",
    "SimpleFusionHead",
    "SpatioTemporalDynamicsAggregation",
    "StdposeLoss",
    "Switches",
    "TemporalFeatureFusion",
    "TemporalKeypointsSynthesis",
    "VisionTransformer",
    "build_model",
    "heatmap_mse",
    "load_vitpose_checkpoint",
    "mi_proxy",
    "modified_sigmoid",
]
