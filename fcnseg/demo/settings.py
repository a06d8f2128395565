"""The demo's size and stages."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HOW", "NAMES", "PRESETS", "STAGES", "DemoSettings"]

NAMES = {"fcn32s_stage1": "FCN-32s, stage 1", "fcn32s": "FCN-32s", "fcn8s": "FCN-8s"}


@dataclass(frozen=True)
class DemoSettings:
    """Size of the demo: data, training length and the report's figures."""

    n_train: int = 160
    n_val: int = 40
    sizes: tuple[int, int] = (96, 160)
    # FCN-32s from ImageNet: a few epochs to stage from (§4.2). Measured with the rest as
    # below (FCN-8s mean IU, ~3 min in all on 2 cores): stages of 12 + 6 epochs gave 48%,
    # 4 + 14 on 96-px crops with cross-entropy 75.6%; CE + Lovász 77.0%; 128-px crops, which
    # hold most images whole, 81.4% (4 + 14, 4.5 min) and 80.6% (3 + 11).
    epochs_stage1: int = 3
    epochs_stage2: int = 11  # FCN-8s from it, and FCN-32s from it for as long
    crop: int = 128
    batch_size: int = 8
    # The Lovász term optimises the IU itself: +1.4 points of mean IU on 96-px crops (squares
    # 78 → 81; bars 59 → 63, rings 64 → 63). The bars and rings gained from the larger crops.
    loss: str = "ce+lovasz"
    # The score layers start at zero (§4.2) and a demo has a few hundred steps to move them:
    # a higher rate than the modern default.
    lr: float = 5e-3
    # Textured shapes on clutter are far from ImageNet: the backbone must move as fast as the
    # new layers (lr 0.01, the backbone at a tenth: FCN-8s 59% mean IU; lr 0.003 for all: 72%).
    backbone_lr_mult: float = 1.0
    boundary: int = 3  # pixels each side of a label boundary
    samples: int = 4  # validation images in the figure
    backbone: str = "efficientnet_lite0"
    pretrained: bool = True  # its ImageNet weights (offline for EfficientNet-Lite0)


PRESETS = {
    "full": DemoSettings(),
    # Seconds: enough to exercise every stage and file, nothing to learn from.
    "tiny": DemoSettings(
        n_train=4,
        n_val=2,
        sizes=(41, 48),
        epochs_stage1=1,
        epochs_stage2=1,
        crop=32,
        batch_size=2,
        samples=2,
    ),
}

# (run, variant, the run it starts from). FCN-8s grows from FCN-32s as in §4.2; so does an
# FCN-32s trained for as long, without skips: what the skips add, and not the extra epochs.
STAGES = (
    ("fcn32s_stage1", "fcn32s", None),
    ("fcn8s", "fcn8s", "fcn32s_stage1"),
    ("fcn32s", "fcn32s", "fcn32s_stage1"),
)
HOW = {
    "fcn32s_stage1": "FCN-32s (stage 1) on {backbone}",
    "fcn8s": "FCN-8s from stage 1, new score layers at zero (§4.2)",
    "fcn32s": "FCN-32s from stage 1 for as long, without skips (the comparison)",
}
