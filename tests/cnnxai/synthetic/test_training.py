"""The synthetic models' training and evaluation leave a model's modes as they found them (docs/architecture.md's
contract): train mode inside the training loop only, eval mode inside accuracy / detect / segment only."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnxai.synthetic.scene_models import ShapesDetector, ShapesSegmenter, detect, segment
from cnnxai.synthetic.training import accuracy, train_model


class ModeRecorder(nn.Module):
    """Records the mode it is called in; passes its input through."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.training)
        return x


def mixed_model() -> tuple[nn.Sequential, ModeRecorder]:
    """A tiny classifier whose modules are in mixed modes (the BatchNorm in eval, the rest in train)."""
    torch.manual_seed(0)
    recorder = ModeRecorder()
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3), recorder)
    model[1].eval()
    return model, recorder


def modes(model: nn.Module) -> list[bool]:
    return [module.training for module in model.modules()]


def test_training_and_accuracy_restore_every_modules_mode():
    model, recorder = mixed_model()
    before = modes(model)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    with torch.autograd.set_grad_enabled(True):
        losses = train_model(model, x, [y], F.cross_entropy, epochs=2, seed=0, batch_size=8)
    assert len(losses) == 2 and recorder.seen == [True] * 4  # 2 epochs x 2 batches, all in train mode
    assert modes(model) == before
    recorder.seen.clear()
    assert 0.0 <= accuracy(model, x, y, batch_size=8) <= 1.0
    assert recorder.seen == [False, False] and modes(model) == before


def test_detect_and_segment_restore_the_mode():
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    for model, predict in ((ShapesDetector(), detect), (ShapesSegmenter(), segment)):
        model.train()
        before = modes(model)
        eval_only = predict(model.eval(), images)  # the reference: the model in eval mode throughout
        model.train()
        predicted = predict(model, images)
        assert modes(model) == before
        if predict is segment:
            assert np.array_equal(predicted, eval_only)  # computed in eval mode all the same
        else:
            assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(predicted, eval_only, strict=True))
