"""The on-disk layouts of the datasets FCN and its successors train on, each registered by name.

``folder`` (a generic images/ + masks/ tree), ``camvid`` (SegNet's release), ``voc`` (PASCAL
VOC 2011/2012), ``sbd`` (Semantic Boundaries Dataset, MATLAB masks), ``cityscapes``,
``ade20k``, ``labelme`` (LabelMe's JSON polygons), ``coco`` (COCO annotations, polygons and
RLE), ``cvat`` (CVAT's segmentation-mask export), ``chase_db1`` (retinal vessels, the
release's flat layout), and the paper's other datasets ``nyud``,
``siftflow`` and ``pascal_context``. Each reader only finds the files and describes the
classes; :class:`~fcnseg.data.datasets.SegmentationDataset` reads and checks them. To add a
layout, write a module here with a class under ``@DATASETS.register("name")`` and import it
below.
"""

from .camvid import CAMVID_CLASSES, CAMVID_PALETTE, CamVidDataset
from .chase import ChaseDB1Dataset
from .coco import COCODataset
from .cvat import CVATDataset
from .folder import FolderDataset
from .labelme import LabelMeDataset
from .paper import NYUDDataset, PascalContextDataset, SIFTFlowDataset
from .scenes import CITYSCAPES_CLASSES, ADE20KDataset, CityscapesDataset
from .voc import VOC_CLASSES, SBDDataset, VOCDataset

__all__ = [
    "ADE20KDataset",
    "CITYSCAPES_CLASSES",
    "CityscapesDataset",
    "CAMVID_CLASSES",
    "CAMVID_PALETTE",
    "VOC_CLASSES",
    "CamVidDataset",
    "ChaseDB1Dataset",
    "COCODataset",
    "CVATDataset",
    "FolderDataset",
    "LabelMeDataset",
    "NYUDDataset",
    "PascalContextDataset",
    "SIFTFlowDataset",
    "SBDDataset",
    "VOCDataset",
]
