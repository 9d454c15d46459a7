"""The installed torch/torchvision pair works together (README: the CPU-only install puts both from PyTorch's CPU
index; a torchvision built for another torch fails on its compiled ops, e.g. `torchvision::nms does not exist`)."""
import torch


def test_torchvision_compiled_ops_run_with_this_torch():
    from torchvision.ops import nms

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0]])  # IoU 81/119 = 0.68
    scores = torch.tensor([0.9, 0.8])
    assert nms(boxes, scores, iou_threshold=0.5).tolist() == [0]  # the weaker overlapping box is suppressed
    assert nms(boxes, scores, iou_threshold=0.7).tolist() == [0, 1]  # below the threshold both stay
