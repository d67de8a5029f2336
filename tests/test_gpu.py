"""CUDA equals CPU, and bf16 stays close to fp32 (marked `gpu`; the CUDA tests skip without a GPU)."""

import copy

import pytest
import torch

from macos_lite.backbones import build_perceptual
from macos_lite.losses import PAPER_WEIGHTS, LossConfig, MaCoSLoss
from macos_lite.model import MaCoSNet

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def joint(model, perceptual, images, dtype=None):
    """Total loss, its terms and the gradients of one joint step (the paper's five losses, triplets)."""
    loss = MaCoSLoss(LossConfig(weights=PAPER_WEIGHTS), perceptual)
    model.zero_grad(set_to_none=True)
    with torch.autocast(images.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        out = model(images)
        total, terms = loss(out, images)
    total.backward()
    grads = {n: p.grad.detach().float().cpu() for n, p in model.named_parameters() if p.grad is not None}
    return total.detach().float().cpu(), {k: v.detach().float().mean().cpu() for k, v in terms.items()}, grads, out


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = MaCoSNet("lite", image_size=96, pretrained=False, backbone_mode="frozen_bn")
    perceptual = build_perceptual("lite", pretrained=False)
    images = torch.rand(2, 3, 3, 96, 96)
    return model, perceptual, images


@pytest.mark.gpu
@cuda
def test_cuda_forward_backward_equals_cpu(setup):
    model, perceptual, images = setup
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    total_cpu, terms_cpu, grads_cpu, out_cpu = joint(copy.deepcopy(model), perceptual, images)
    total_gpu, terms_gpu, grads_gpu, out_gpu = joint(copy.deepcopy(model).cuda(), copy.deepcopy(perceptual).cuda(),
                                                     images.cuda())
    torch.testing.assert_close(out_gpu.theta_aff.cpu(), out_cpu.theta_aff, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out_gpu.mask_logits.cpu(), out_cpu.mask_logits, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(total_gpu, total_cpu, rtol=1e-4, atol=1e-4)
    for name in ("affine_head.linear.weight", "tps_head.linear.weight", "decoder.up8.0.weight"):
        torch.testing.assert_close(grads_gpu[name], grads_cpu[name], rtol=1e-2, atol=1e-4)


@pytest.mark.gpu
@cuda
def test_bf16_loss_close_to_fp32_on_cuda(setup):
    model, perceptual, images = setup
    model, perceptual, images = copy.deepcopy(model).cuda(), copy.deepcopy(perceptual).cuda(), images.cuda()
    total32, terms32, _, _ = joint(model, perceptual, images)
    total16, terms16, _, _ = joint(model, perceptual, images, torch.bfloat16)
    assert abs(total16 - total32) <= 0.05 * abs(total32) + 0.02
    for name in terms32:
        assert abs(terms16[name] - terms32[name]) <= 0.1 * abs(terms32[name]) + 0.02, name


def test_bf16_loss_close_to_fp32_on_cpu(setup):
    """The same tolerance on the CPU's bf16 autocast, so the check also runs where there is no GPU."""
    model, perceptual, images = setup
    small = images[:1]
    total32, terms32, _, _ = joint(copy.deepcopy(model), perceptual, small)
    total16, terms16, _, _ = joint(copy.deepcopy(model), perceptual, small, torch.bfloat16)
    assert abs(total16 - total32) <= 0.05 * abs(total32) + 0.02
    for name in terms32:
        assert abs(terms16[name] - terms32[name]) <= 0.1 * abs(terms32[name]) + 0.02, name
