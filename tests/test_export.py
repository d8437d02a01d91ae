"""Export: ONNX (run in onnxruntime) and TorchScript equal the eager model at two input sizes, 2D and 3D."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from plsearch.config.presets import preset_config
from plsearch.config.schema import DataConfig, RunConfig, to_dict
from plsearch.infer.export import export_model, inference_graph, run_exported, verify
from plsearch.nn.checkpoint import save_checkpoint
from plsearch.nn.model import PLNet

pytest.importorskip("onnxruntime")


def _tiny(dims: int) -> PLNet:
    torch.manual_seed(dims)
    kw = {"in_channels": 3, "num_classes": 1} if dims == 2 else {"in_channels": 1, "num_classes": 3}
    model = PLNet.from_config(preset_config("plnet-small", base_width=4, depth=3, spatial_dims=dims, **kw))
    with torch.no_grad():  # BatchNorm statistics away from (0, 1), so folding them is really tested
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


# the second size is not a multiple of the total stride (4): the graph pads and crops itself
SIZES = {2: [(32, 32), (27, 45)], 3: [(16, 16, 16), (13, 18, 11)]}


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_graph_equals_the_eager_model(tmp_path, dims, fmt):
    model = _tiny(dims)
    out = export_model(
        model, tmp_path / f"m.{'onnx' if fmt == 'onnx' else 'pt'}", fmt=fmt, input_size=SIZES[dims][0], dynamic=True
    )
    for size in SIZES[dims]:
        x = torch.rand(2, model.config.in_channels, *size)
        with torch.no_grad():
            want = model(x)
        got = run_exported(out, x)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_graph_is_fused_and_has_only_the_fused_head():
    model = _tiny(2)
    graph = inference_graph(model)
    assert graph.net.fused is not None and len(graph.net.fused) > 0
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in graph.net.fused.modules())
    x = torch.rand(1, 3, 20, 36)
    with torch.no_grad():
        torch.testing.assert_close(graph(x), model(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match="not a PLNet"):
        inference_graph(nn.Conv2d(3, 1, 1))


def test_cli_exports_a_checkpoint_and_reports_the_difference(tmp_path, capsys):
    from plsearch.cli.export import main

    model = _tiny(3)
    run = RunConfig(model=model.config, data=DataConfig(image_size=16))
    ckpt = save_checkpoint(
        tmp_path / "run" / "best.pt", model.state_dict(), model_config=model.config.to_dict(), run_config=to_dict(run)
    )
    out = tmp_path / "export" / "model.pt"
    assert main(["--checkpoint", str(ckpt), "--format", "torchscript", "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert "largest difference to the eager model" in line and out.is_file()
    assert verify(out, model, [(17, 9, 12)]) < 1e-4
    assert main(["--checkpoint", str(ckpt), "--format", "onnx", "--out", str(out), "--input-size", "16", "16"]) == 2
    assert "has 2 numbers but the network is 3D" in capsys.readouterr().err
    assert main(["--checkpoint", str(ckpt), "--format", "onnx", "--out", str(ckpt)]) == 2
