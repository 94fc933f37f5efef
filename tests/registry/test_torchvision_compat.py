"""torchvision imports on the CPU torch (runtime/torchvision_compat.py), so timm models build."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from skillmill.runtime import torchvision_compat


def test_torchvision_and_timm_import_in_a_fresh_process():
    # A fresh interpreter: the hook must run from `import torch` alone, before transformers
    # (whose image utilities import torchvision) or anything of skillmill is imported.
    code = (
        "from transformers import BertModel\n"
        "import torchvision, timm\n"
        "from torchvision.ops.misc import FrozenBatchNorm2d\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_missing_ops_are_declared_not_faked():
    pytest.importorskip("torchvision")
    import torchvision

    if torchvision_compat.extension_loads():
        pytest.skip("torchvision's own C++ extension loads here; nothing to declare")
    # Declared for the import, but with no kernel: calling it is an error, never a made-up result.
    with pytest.raises(RuntimeError):
        torchvision.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)


def test_timm_model_runs():
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet10t", pretrained=False, num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
