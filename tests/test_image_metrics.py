"""Image metrics: PSNR / SSIM against scikit-image and pytorch-msssim, masked variants by hand, LPIPS
(AlexNet) against the lpips package's own network on the same (random) weights."""

import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perception3d.evaluation.image_metrics import LPIPS, load_lpips, lpips
from perception3d.ops.image_quality import mask_bbox, psnr, psnr_masked, ssim, ssim_masked


def _pair(h=64, w=80, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.random((h, w, 3)).astype(np.float32)
    # a smooth image plus noise, so SSIM is neither ~0 nor ~1
    yy, xx = np.mgrid[0:h, 0:w] / 10.0
    gt = (0.5 + 0.4 * np.sin(xx)[..., None] * np.cos(yy)[..., None] + 0.1 * gt).clip(0, 1).astype(np.float32)
    pred = (gt + 0.08 * rng.standard_normal(gt.shape)).clip(0, 1).astype(np.float32)
    return pred, gt


def test_psnr_vs_skimage_and_hand():
    from skimage.metrics import peak_signal_noise_ratio

    pred, gt = _pair()
    assert abs(psnr(pred, gt) - peak_signal_noise_ratio(gt, pred, data_range=1.0)) < 1e-4
    assert abs(psnr(np.full((4, 4, 3), 0.1), np.zeros((4, 4, 3))) - 20.0) < 1e-9  # MSE 0.01 -> 20 dB
    assert psnr(gt, gt) == float("inf")


def test_training_ssim_is_the_evaluation_ssim_and_matches_pytorch_msssim_gradients():
    """The 3DGS D-SSIM term (ssim_differentiable, float32, with gradients) is the evaluation SSIM's formula: the
    same value as ``ssim`` (float64) and as pytorch-msssim, and pytorch-msssim's gradient."""
    from pytorch_msssim import ssim as ms_ssim

    from perception3d.ops.image_quality import ssim_differentiable

    for seed in range(2):
        pred, gt = _pair(seed=seed)
        x = torch.from_numpy(pred).float().permute(2, 0, 1)[None].requires_grad_(True)
        y = torch.from_numpy(gt).float().permute(2, 0, 1)[None]
        ours = ssim_differentiable(x, y)
        (g_ours,) = torch.autograd.grad(ours, x)
        ref = ms_ssim(x, y, data_range=1.0, size_average=True)
        (g_ref,) = torch.autograd.grad(ref, x)
        assert abs(float(ours) - ssim(pred, gt)) < 1e-6
        assert abs(float(ours) - float(ref)) < 1e-5      # float32 sums in a different order
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-3, atol=1e-3 * float(g_ref.abs().max()))
    with pytest.raises(ValueError, match="B, C, H, W"):
        ssim_differentiable(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))


def test_ssim_vs_skimage_and_pytorch_msssim():
    from pytorch_msssim import ssim as ms_ssim
    from skimage.metrics import structural_similarity

    for seed in range(3):
        pred, gt = _pair(seed=seed)
        ours = ssim(pred, gt)
        sk = structural_similarity(gt, pred, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False)
        ms = float(ms_ssim(torch.from_numpy(pred).permute(2, 0, 1)[None], torch.from_numpy(gt).permute(2, 0, 1)[None],
                           data_range=1.0, size_average=True))
        assert 0.2 < ours < 0.95
        assert abs(ours - sk) < 1e-4, (ours, sk)
        assert abs(ours - ms) < 1e-4, (ours, ms)
        for padding in ("valid", "same"):  # the torch (GPU) path equals the scipy (CPU) path
            assert abs(ssim(pred, gt, padding=padding, backend="torch") - ssim(pred, gt, padding=padding)) < 1e-9
    assert abs(ssim(gt, gt) - 1.0) < 1e-9


def test_ssim_same_padding_is_3dgs_variant():
    # 3DGS utils/loss_utils.py: 2D Gaussian window (outer product), conv2d with padding 5, mean of the map.
    pred, gt = _pair()
    x = torch.from_numpy(pred).permute(2, 0, 1)[None].double()
    y = torch.from_numpy(gt).permute(2, 0, 1)[None].double()
    g = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2)).double()
    g = g / g.sum()
    w = (g[:, None] @ g[None, :]).expand(3, 1, 11, 11)
    conv = lambda t: F.conv2d(t, w, padding=5, groups=3)  # noqa: E731
    mx, my = conv(x), conv(y)
    sxx, syy, sxy = conv(x * x) - mx ** 2, conv(y * y) - my ** 2, conv(x * y) - mx * my
    m = ((2 * mx * my + 1e-4) * (2 * sxy + 9e-4)) / ((mx ** 2 + my ** 2 + 1e-4) * (sxx + syy + 9e-4))
    assert abs(ssim(pred, gt, padding="same") - float(m.mean())) < 1e-6


def test_masked_metrics():
    pred, gt = _pair()
    mask = np.zeros(gt.shape[:2], bool)
    mask[10:30, 20:50] = True
    mask[12, 60] = True  # one stray pixel widens the bbox to x = 60
    mse = ((pred - gt) ** 2)[mask].mean()
    assert abs(psnr_masked(pred, gt, mask) - (-10 * np.log10(mse))) < 1e-4
    # outside the mask nothing counts
    pred2 = pred.copy()
    pred2[~mask] = 0
    assert abs(psnr_masked(pred2, gt, mask) - psnr_masked(pred, gt, mask)) < 1e-9
    assert mask_bbox(mask) == (10, 30, 20, 61)
    assert abs(ssim_masked(pred, gt, mask) - ssim(pred[10:30, 20:61], gt[10:30, 20:61])) < 1e-9
    with pytest.raises(ValueError, match="empty"):
        psnr_masked(pred, gt, np.zeros_like(mask))
    with pytest.raises(ValueError, match="shape"):
        psnr_masked(pred, gt, mask[:5])


def _random_lpips_files(tmp_path):
    torch.manual_seed(0)
    net = LPIPS()
    alex = {}
    for i, layer in enumerate(net.features):
        if isinstance(layer, torch.nn.Conv2d):
            fan_in = layer.weight[0].numel()
            alex[f"features.{i}.weight"] = torch.randn_like(layer.weight) * (2 / fan_in) ** 0.5
            alex[f"features.{i}.bias"] = torch.randn_like(layer.bias) * 0.01
    alex["classifier.1.weight"] = torch.zeros(4, 4)  # extra keys of the torchvision file are ignored
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) * 0.1 for k, c in enumerate(LPIPS.CHANNELS)}
    torch.save(alex, tmp_path / "alexnet.pth")
    torch.save(lin, tmp_path / "alex.pth")
    return tmp_path / "alex.pth", tmp_path / "alexnet.pth", alex, lin


def _torchvision_alexnet_features() -> torch.nn.Sequential:
    """torchvision's ``AlexNet.features`` written out here (torchvision/models/alexnet.py), independent of our
    trunk, so that the reference network does not share the code under test."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2))


def test_lpips_not_computed_without_weights():
    pred, gt = _pair()
    assert load_lpips(None, None) is None
    assert lpips(pred, gt, None) is None


def test_lpips_against_lpips_package(tmp_path):
    lin_path, alex_path, alex, lin = _random_lpips_files(tmp_path)
    net = load_lpips(lin_path, alex_path)
    pred, gt = _pair(96, 112)
    val = lpips(pred, gt, net)
    assert val > 0 and lpips(gt, gt, net) == 0.0
    assert abs(val - lpips(gt, pred, net)) < 1e-6
    mask = np.zeros(gt.shape[:2], bool)
    mask[20:80, 10:90] = True
    assert abs(lpips(pred, gt, net, mask=mask) - lpips(pred[20:80, 10:90], gt[20:80, 10:90], net)) < 1e-7
    # a box thinner than 32 px grows about its centre to 32 px: rows 40-50 -> 29-61
    thin = np.zeros(gt.shape[:2], bool)
    thin[40:50, 10:90] = True
    assert abs(lpips(pred, gt, net, mask=thin) - lpips(pred[29:61, 10:90], gt[29:61, 10:90], net)) < 1e-7

    # Reference: the lpips package (pip `lpips`, not a dependency) with its AlexNet trunk built from our files.
    # lpips imports torchvision only for `models.alexnet(...).features`; give it a stand-in with the same layers.
    try:
        fake_tv = types.ModuleType("torchvision")
        fake_models = types.ModuleType("torchvision.models")

        def alexnet(pretrained=False, **kw):
            m = types.SimpleNamespace(features=_torchvision_alexnet_features())
            m.features.load_state_dict({k.removeprefix("features."): v for k, v in alex.items()
                                        if k.startswith("features.")})
            return m

        for n in ("vgg16", "squeezenet1_1", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
            setattr(fake_models, n, None)
        fake_models.alexnet = alexnet
        fake_tv.models = fake_models
        saved = {k: sys.modules.get(k) for k in ("torchvision", "torchvision.models")}
        sys.modules["torchvision"], sys.modules["torchvision.models"] = fake_tv, fake_models
        try:
            sys.modules.pop("lpips", None)
            import lpips as lp
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
    except ImportError:
        pytest.skip("the lpips package is not installed (pip install --no-deps lpips)")
    ref = lp.LPIPS(net="alex", pretrained=True, model_path=str(lin_path), verbose=False).eval()
    x = torch.from_numpy(pred).permute(2, 0, 1)[None]
    y = torch.from_numpy(gt).permute(2, 0, 1)[None]
    with torch.no_grad():
        want = float(ref(x, y, normalize=True))
    assert abs(val - want) < 1e-5, (val, want)


def test_lpips_bad_weights(tmp_path):
    lin_path, alex_path, alex, lin = _random_lpips_files(tmp_path)
    lin["lin2.model.1.weight"] = torch.zeros(1, 10, 1, 1)
    torch.save(lin, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="lin2.model.1.weight"):
        LPIPS().load_weights(tmp_path / "bad.pth", alex_path)
    del alex["features.3.bias"]
    torch.save(alex, tmp_path / "bad_alex.pth")
    with pytest.raises(ValueError, match="features.3.bias"):
        LPIPS().load_weights(lin_path, tmp_path / "bad_alex.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        LPIPS().load_weights(tmp_path / "nope.pth", alex_path)
