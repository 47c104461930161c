from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import LazyConfig, instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, SemanticSegmentor

from apd.modeling.heads import ASPPHead, FPNSegHead, PSPHead
from apd.modeling.meta_arch.segmentor import Segmentor

K = 4
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "common" / "models"


class TinyBackbone(Backbone):
    """Three stride-2 3×3 convs → res4 (8 ch, stride 8); another 3×3 conv → res5 (16 ch)."""

    def __init__(self, size_divisibility=0):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 4, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(4, 8, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, 2, 1),
        )
        self.res5 = nn.Conv2d(8, 16, 3, padding=1)
        self._divisibility = size_divisibility

    @property
    def size_divisibility(self):
        return self._divisibility

    def forward(self, x):
        res4 = self.stem(x)
        return {"res4": res4, "res5": self.res5(F.relu(res4))}

    def output_shape(self):
        return {"res4": ShapeSpec(channels=8, stride=8), "res5": ShapeSpec(channels=16, stride=8)}


def _parts(align_corners=False, size_divisibility=0):
    torch.manual_seed(0)
    backbone = TinyBackbone(size_divisibility)
    head = PSPHead(
        backbone.output_shape(), num_classes=K, channels=12, aux_in_feature="res4", aux_channels=6,
        align_corners=align_corners,
    )
    return backbone, head


def _model(align_corners=False, size_divisibility=0, **kw):
    backbone, head = _parts(align_corners, size_divisibility)
    return Segmentor(backbone=backbone, sem_seg_head=head, pixel_mean=MEAN, pixel_std=STD, **kw)


def _inputs(sizes, labels=False, out_size=None):
    torch.manual_seed(1)
    batch = []
    for h, w in sizes:
        item = {"image": torch.rand(3, h, w) * 255}
        if labels:
            item["sem_seg"] = torch.randint(0, K, (h, w))
        if out_size is not None:
            item["height"], item["width"] = out_size
        batch.append(item)
    return batch


def test_registered():
    assert META_ARCH_REGISTRY.get("Segmentor") is Segmentor


def test_training_returns_weighted_named_losses():
    model = _model().train()
    losses = model(_inputs([(33, 33), (25, 41)], labels=True))
    assert set(losses) == {"loss_sem_seg", "loss_aux"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.stem[0].weight.grad is not None


def test_training_without_labels_is_an_error():
    with pytest.raises(ValueError, match="sem_seg"):
        _model().train()(_inputs([(16, 16)]))


def test_preprocess_pads_images_with_mean_and_labels_with_ignore():
    model = _model(size_divisibility=16)
    batch = _inputs([(20, 20), (33, 17)], labels=True)
    images = model.preprocess_image(batch)
    assert images.tensor.shape == (2, 3, 48, 32) and images.image_sizes == [(20, 20), (33, 17)]
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    torch.testing.assert_close(images.tensor[1, :, :33, :17], (batch[1]["image"] - mean) / std)
    assert images.tensor[1, :, 33:].abs().max() == 0
    assert images.tensor[1, :, :, 17:].abs().max() == 0
    targets = model.preprocess_sem_seg(batch)
    assert targets.shape == (2, 48, 32)
    assert torch.equal(targets[0, :20, :20], batch[0]["sem_seg"])
    assert (targets[0, 20:] == 255).all() and (targets[0, :, 20:] == 255).all()


def test_whole_image_inference_matches_detectron2_semantic_segmentor():
    model = _model().eval()
    reference = SemanticSegmentor(
        backbone=model.backbone, sem_seg_head=model.sem_seg_head, pixel_mean=MEAN, pixel_std=STD
    ).eval()
    batch = _inputs([(32, 40), (32, 40)], out_size=(50, 60))
    with torch.no_grad():
        ours, theirs = model(batch), reference(batch)
    assert len(ours) == 2 and ours[0]["sem_seg"].shape == (K, 50, 60)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a["sem_seg"], b["sem_seg"])


def test_inference_resizes_to_exact_input_size_with_align_corners():
    model = _model(align_corners=True).eval()
    x = model.preprocess_image(_inputs([(33, 41)])).tensor
    with torch.no_grad():
        logits = model.predict_logits(x)
        # 33×41 input → 5×6 features; (5−1)·8+1 = 33, (6−1)·8+1 = 41: one align_corners resize.
        low = model.sem_seg_head.layers(model.backbone(x)).logits
        out = model(_inputs([(33, 41)]))
    expected = F.interpolate(low, size=(33, 41), mode="bilinear", align_corners=True)
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(out[0]["sem_seg"], logits[0])  # no height/width → image size


def test_sliding_window_covering_image_equals_softmax_of_whole_image():
    whole = _model(align_corners=True).eval()
    sliding = _model(align_corners=True, sliding_window={"crop_size": (33, 41)}).eval()
    batch = _inputs([(33, 41), (33, 41)])
    with torch.no_grad():
        expected = [F.softmax(r["sem_seg"], dim=0) for r in whole(batch)]
        got = [r["sem_seg"] for r in sliding(batch)]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_sliding_window_with_flip_returns_probabilities_at_requested_size():
    window = {"crop_size": (20, 24), "flip": True}
    model = _model(size_divisibility=16, sliding_window=window).eval()
    assert model.sliding_window == {"crop_size": (20, 24), "stride": (14, 16), "flip": True}
    with torch.no_grad():
        out = model(_inputs([(30, 50), (17, 22)], out_size=(15, 25)))
    for r in out:
        assert r["sem_seg"].shape == (K, 15, 25)
        torch.testing.assert_close(r["sem_seg"].sum(0), torch.ones(15, 25))


def test_argument_errors_name_the_value():
    with pytest.raises(ValueError, match="YUV"):
        _model(input_format="YUV")
    with pytest.raises(ValueError, match="size"):
        _model(sliding_window={"crop_size": 8, "size": 3})


def _load(name):
    return LazyConfig.load(str(CONFIGS / f"{name}.py"))


@pytest.mark.parametrize(
    "name, head_type", [("pspnet", PSPHead), ("deeplabv3", ASPPHead), ("semantic_fpn", FPNSegHead)]
)
def test_model_configs_instantiate_and_run_on_cpu(name, head_type):
    cfg = _load(name)
    assert list(cfg.keys()) == ["model"]
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    assert isinstance(model, Segmentor) and isinstance(model.sem_seg_head, head_type)
    assert model.input_format == "RGB" and model.sem_seg_head.num_classes == 19
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 33, 49) * 255, "height": 20, "width": 30}])
    assert out[0]["sem_seg"].shape == (19, 20, 30)


def test_pspnet_config_depth_change_and_shared_norm():
    cfg = _load("pspnet")
    cfg.model.backbone.depth = 18
    cfg.model.sem_seg_head.input_shape = {
        "res4": ShapeSpec(channels=256, stride=8),
        "res5": ShapeSpec(channels=512, stride=8),
    }
    cfg.model.backbone.norm = "SyncBN"
    model = instantiate(cfg.model).eval()
    head = model.sem_seg_head
    assert head.feature_channels == 512 and head.align_corners and head.aux_weight == 0.4
    assert isinstance(head.merge[0].norm, nn.SyncBatchNorm)  # head norm follows backbone.norm
    # ResNet-18 res5 has 512 channels: 4 bins × 128 + 512 = 1024 enter the merge conv.
    assert head.merge[0].weight.shape == (512, 1024, 3, 3)
    assert head.aux_head.conv.weight.shape == (256, 256, 3, 3)


def test_deeplabv3_config_is_pspnet_with_aspp():
    head = _load("deeplabv3").model.sem_seg_head
    assert "bins" not in head and head.dilations == (12, 24, 36)
    assert head.aux_in_feature == "res4" and head.align_corners is True
