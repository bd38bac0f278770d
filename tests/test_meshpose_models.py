"""MeshPose backbones (stride-4, 256 channels, reference parameter names kept) and the
model registry / project-checkpoint round trip through the ``meshpose`` method."""
import numpy as np
import pytest
import torch

from core.models.backbones import hrnet_w32, mobilenet_v2, resnet50
from core.models.meshpose import create_meshpose_backbone


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50", "hrnet_w32"])
def test_backbones_give_stride4_256_channel_maps(name):
    torch.manual_seed(0)
    net = create_meshpose_backbone(name).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 32, 64))
    assert out.shape == (1, 256, 8, 16)


def test_dilated_trunks_keep_the_reference_parameters():
    """Dilation changes strides and dilations only: torchvision-named weights still load."""
    for name, plain in (("resnet50", resnet50), ("mobilenet_v2", mobilenet_v2)):
        trunk = create_meshpose_backbone(name).trunk
        ref = plain()
        ref_sd = ref.state_dict()
        assert {k: v.shape for k, v in trunk.state_dict().items()} == {k: v.shape for k, v in ref_sd.items()}
        trunk.load_state_dict(ref_sd)
    r = create_meshpose_backbone("resnet50").trunk
    assert r.layer4[0].conv2.stride == (1, 1) and r.layer4[0].downsample[0].stride == (1, 1)
    assert r.layer4[1].conv2.dilation == (2, 2) and r.layer3[0].conv2.stride == (2, 2)
    m = create_meshpose_backbone("mobilenet_v2").trunk
    x = torch.randn(1, 3, 64, 64)
    assert m.features(x).shape[-1] == 4                               # stride 16 instead of 32


def test_hrnet_fusion_replaces_the_last_32_channel_fusion():
    net = create_meshpose_backbone("hrnet_w32")
    names = [k for k, _ in net.named_parameters()]
    assert not any(k.startswith("trunk.stage4.2.fuse_layers") for k in names)
    assert any(k.startswith("trunk.stage4.1.fuse_layers") for k in names)
    assert [f[0].in_channels for f in net.fuse] == [32, 64, 128, 256]
    assert all(f[0].out_channels == 256 for f in net.fuse)
    # every other parameter is the reference HRNet-W32's, by name and shape
    ref = {k: v.shape for k, v in hrnet_w32().state_dict().items() if not k.startswith("stage4.2.fuse_layers")}
    ours = {k[len("trunk."):]: v.shape for k, v in net.state_dict().items() if k.startswith("trunk.")}
    assert ours == ref


def test_registry_and_checkpoint_round_trip_through_the_method(tmp_path):
    from core.methods import MethodInputs, create_method
    from core.models import create_model, list_models, save_checkpoint

    assert {"meshpose", "meshpose_s", "meshpose_xs"} <= set(list_models())
    torch.manual_seed(0)
    model = create_model("meshpose_xs", body="open")
    assert model.backbone_name == "mobilenet_v2" and not model.weights_trained
    path = save_checkpoint(model, tmp_path / "mp.safetensors", config={"notes": "test"}, trained=True)
    img = (np.random.default_rng(1).random((240, 320, 3)) * 255).astype(np.uint8)
    inputs = MethodInputs.from_image(img, [160, 120], 1.0)
    trace = create_method("meshpose", checkpoint=str(path)).run(inputs)
    assert trace.meta["weights_trained"] is True and trace.meta["checkpoint"] == str(path)
    assert "warning" not in trace.meta
    # same weights → same output as the in-memory model
    from core.models.meshpose import meshpose_trace
    direct = meshpose_trace(model.eval(), inputs.crop)
    assert np.allclose(direct.final.maps["fused_xy"], trace.final.maps["fused_xy"], atol=1e-4)
    with pytest.raises(ValueError, match="not MeshPose"):
        hmr = create_model("hmr_mobilenet_v2")
        create_method("meshpose", checkpoint=str(save_checkpoint(hmr, tmp_path / "hmr.safetensors")))
