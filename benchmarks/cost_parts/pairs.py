"""The model pairs the cost benchmark times (the configs train_net.py runs) and their synthetic inputs."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PAIRS = {
    "deeplab": dict(config="configs/apd_deeplab_r18.py", kind="seg", size=(512, 1024),
                    label="DeepLabV3-R101 → DeepLabV3-R18"),
    "pspnet": dict(config="configs/apd_pspnet_r18.py", kind="seg", size=(512, 1024),
                   label="PSPNet-R101 → PSPNet-R18"),
    "mask_rcnn": dict(config="configs/COCO-InstanceSegmentation/apd_mask_rcnn_R101_to_R50_FPN_1x.py",
                      kind="rcnn", size=(800, 1333), label="Mask R-CNN R101-FPN → R50-FPN"),
    # The CPU demo pair of benchmarks/accuracy.py (not in the default list).
    "demo": dict(config="configs/demo/apd_pspnet_r18_demo.py", kind="seg", size=(128, 256),
                 label="demo teacher → demo student (configs/demo)"),
}
DEFAULT_PAIRS = ("deeplab", "pspnet", "mask_rcnn")
NUM_BOXES = 5  # synthetic ground-truth instances per image (Mask R-CNN)


def seg_batch(batch: int, height: int, width: int, num_classes: int = 19, ignore: int = 255):
    """Synthetic segmentation inputs: uint8 noise images and labels where every class is present.

    The label map is a 4×5 grid of blocks: classes 0..K-1 in reading order, the remaining blocks
    ignore; shifted per image so the images differ.
    """
    import torch

    g = torch.Generator().manual_seed(0)
    rows, cols = 4, 5
    ys = torch.arange(height) * rows // height
    xs = torch.arange(width) * cols // width
    out = []
    for i in range(batch):
        cell = (ys[:, None] * cols + xs[None, :] + i) % (rows * cols)
        label = torch.where(cell < num_classes, cell, torch.full_like(cell, ignore)).long()
        image = torch.randint(0, 256, (3, height, width), generator=g, dtype=torch.uint8)
        out.append({"image": image, "sem_seg": label, "height": height, "width": width})
    return out


def rcnn_batch(batch: int, height: int, width: int, num_classes: int = 80, num_boxes: int = NUM_BOXES):
    """Synthetic detection inputs: uint8 noise images, ``num_boxes`` boxes per image with diamond masks."""
    import numpy as np
    import torch
    from detectron2.structures import Boxes, Instances, PolygonMasks

    rng = np.random.default_rng(0)
    out = []
    for _ in range(batch):
        bw = rng.uniform(64, width / 3, num_boxes)
        bh = rng.uniform(64, height / 3, num_boxes)
        x0 = rng.uniform(0, width - bw)
        y0 = rng.uniform(0, height - bh)
        boxes = np.stack([x0, y0, x0 + bw, y0 + bh], axis=1).astype(np.float32)
        polygons = [
            [np.array([(a + c) / 2, b, c, (b + d) / 2, (a + c) / 2, d, a, (b + d) / 2], dtype=np.float64)]
            for a, b, c, d in boxes
        ]
        inst = Instances((height, width))
        inst.gt_boxes = Boxes(torch.from_numpy(boxes))
        inst.gt_classes = torch.from_numpy(rng.integers(0, num_classes, num_boxes)).long()
        inst.gt_masks = PolygonMasks(polygons)
        image = torch.from_numpy(rng.integers(0, 256, (3, height, width), dtype=np.uint8))
        out.append({"image": image, "instances": inst, "height": height, "width": width})
    return out


def to_device(batch, device):
    return [{k: (v.to(device) if hasattr(v, "to") else v) for k, v in x.items()} for x in batch]
