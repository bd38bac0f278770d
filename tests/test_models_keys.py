"""State-dict layouts of the regressors vs the official checkpoints' keys.

The reference listings below are transcribed from the fact sheet
(`spin_pymaf.md` Appendices A–C, `spin_hmr_keys.tsv`, `pymaf_res50_keys.tsv`): one
`key  shape` per line, `X  BN[C]` standing for X.weight/.bias/.running_mean/.running_var
([C]) and X.num_batches_tracked ([]). They are independent of the model code.
"""
import pytest
import torch

from core.models import CLIFF, HMR, PyMAF, CheckpointMismatch, load_torchvision_weights
from core.models.backbones import mobilenet_v2, resnet18, resnet34, resnet50

RESNET50 = """
conv1.weight  [64,3,7,7]
bn1  BN[64]
layer1.0.conv1.weight  [64,64,1,1]
layer1.0.bn1  BN[64]
layer1.0.conv2.weight  [64,64,3,3]
layer1.0.bn2  BN[64]
layer1.0.conv3.weight  [256,64,1,1]
layer1.0.bn3  BN[256]
layer1.0.downsample.0.weight  [256,64,1,1]
layer1.0.downsample.1  BN[256]
layer1.1.conv1.weight  [64,256,1,1]
layer1.1.bn1  BN[64]
layer1.1.conv2.weight  [64,64,3,3]
layer1.1.bn2  BN[64]
layer1.1.conv3.weight  [256,64,1,1]
layer1.1.bn3  BN[256]
layer1.2.conv1.weight  [64,256,1,1]
layer1.2.bn1  BN[64]
layer1.2.conv2.weight  [64,64,3,3]
layer1.2.bn2  BN[64]
layer1.2.conv3.weight  [256,64,1,1]
layer1.2.bn3  BN[256]
layer2.0.conv1.weight  [128,256,1,1]
layer2.0.bn1  BN[128]
layer2.0.conv2.weight  [128,128,3,3]
layer2.0.bn2  BN[128]
layer2.0.conv3.weight  [512,128,1,1]
layer2.0.bn3  BN[512]
layer2.0.downsample.0.weight  [512,256,1,1]
layer2.0.downsample.1  BN[512]
layer2.1.conv1.weight  [128,512,1,1]
layer2.1.bn1  BN[128]
layer2.1.conv2.weight  [128,128,3,3]
layer2.1.bn2  BN[128]
layer2.1.conv3.weight  [512,128,1,1]
layer2.1.bn3  BN[512]
layer2.2.conv1.weight  [128,512,1,1]
layer2.2.bn1  BN[128]
layer2.2.conv2.weight  [128,128,3,3]
layer2.2.bn2  BN[128]
layer2.2.conv3.weight  [512,128,1,1]
layer2.2.bn3  BN[512]
layer2.3.conv1.weight  [128,512,1,1]
layer2.3.bn1  BN[128]
layer2.3.conv2.weight  [128,128,3,3]
layer2.3.bn2  BN[128]
layer2.3.conv3.weight  [512,128,1,1]
layer2.3.bn3  BN[512]
layer3.0.conv1.weight  [256,512,1,1]
layer3.0.bn1  BN[256]
layer3.0.conv2.weight  [256,256,3,3]
layer3.0.bn2  BN[256]
layer3.0.conv3.weight  [1024,256,1,1]
layer3.0.bn3  BN[1024]
layer3.0.downsample.0.weight  [1024,512,1,1]
layer3.0.downsample.1  BN[1024]
layer3.1.conv1.weight  [256,1024,1,1]
layer3.1.bn1  BN[256]
layer3.1.conv2.weight  [256,256,3,3]
layer3.1.bn2  BN[256]
layer3.1.conv3.weight  [1024,256,1,1]
layer3.1.bn3  BN[1024]
layer3.2.conv1.weight  [256,1024,1,1]
layer3.2.bn1  BN[256]
layer3.2.conv2.weight  [256,256,3,3]
layer3.2.bn2  BN[256]
layer3.2.conv3.weight  [1024,256,1,1]
layer3.2.bn3  BN[1024]
layer3.3.conv1.weight  [256,1024,1,1]
layer3.3.bn1  BN[256]
layer3.3.conv2.weight  [256,256,3,3]
layer3.3.bn2  BN[256]
layer3.3.conv3.weight  [1024,256,1,1]
layer3.3.bn3  BN[1024]
layer3.4.conv1.weight  [256,1024,1,1]
layer3.4.bn1  BN[256]
layer3.4.conv2.weight  [256,256,3,3]
layer3.4.bn2  BN[256]
layer3.4.conv3.weight  [1024,256,1,1]
layer3.4.bn3  BN[1024]
layer3.5.conv1.weight  [256,1024,1,1]
layer3.5.bn1  BN[256]
layer3.5.conv2.weight  [256,256,3,3]
layer3.5.bn2  BN[256]
layer3.5.conv3.weight  [1024,256,1,1]
layer3.5.bn3  BN[1024]
layer4.0.conv1.weight  [512,1024,1,1]
layer4.0.bn1  BN[512]
layer4.0.conv2.weight  [512,512,3,3]
layer4.0.bn2  BN[512]
layer4.0.conv3.weight  [2048,512,1,1]
layer4.0.bn3  BN[2048]
layer4.0.downsample.0.weight  [2048,1024,1,1]
layer4.0.downsample.1  BN[2048]
layer4.1.conv1.weight  [512,2048,1,1]
layer4.1.bn1  BN[512]
layer4.1.conv2.weight  [512,512,3,3]
layer4.1.bn2  BN[512]
layer4.1.conv3.weight  [2048,512,1,1]
layer4.1.bn3  BN[2048]
layer4.2.conv1.weight  [512,2048,1,1]
layer4.2.bn1  BN[512]
layer4.2.conv2.weight  [512,512,3,3]
layer4.2.bn2  BN[512]
layer4.2.conv3.weight  [2048,512,1,1]
layer4.2.bn3  BN[2048]
"""

SPIN_HEAD = """
fc1.weight  [1024,2205]
fc1.bias  [1024]
fc2.weight  [1024,1024]
fc2.bias  [1024]
decpose.weight  [144,1024]
decpose.bias  [144]
decshape.weight  [10,1024]
decshape.bias  [10]
deccam.weight  [3,1024]
deccam.bias  [3]
init_pose  [1,144]
init_shape  [1,10]
init_cam  [1,3]
"""

PYMAF_EXTRA = """
deconv_layers.0.weight  [2048,256,4,4]
deconv_layers.1  BN[256]
deconv_layers.3.weight  [256,256,4,4]
deconv_layers.4  BN[256]
deconv_layers.6.weight  [256,256,4,4]
deconv_layers.7  BN[256]
maf_extractor.0.conv0.weight  [128,256,1]
maf_extractor.0.conv0.bias  [128]
maf_extractor.0.conv1.weight  [64,384,1]
maf_extractor.0.conv1.bias  [64]
maf_extractor.0.conv2.weight  [5,320,1]
maf_extractor.0.conv2.bias  [5]
maf_extractor.0.Dmap  [431,6890]
maf_extractor.1.conv0.weight  [128,256,1]
maf_extractor.1.conv0.bias  [128]
maf_extractor.1.conv1.weight  [64,384,1]
maf_extractor.1.conv1.bias  [64]
maf_extractor.1.conv2.weight  [5,320,1]
maf_extractor.1.conv2.bias  [5]
maf_extractor.1.Dmap  [431,6890]
maf_extractor.2.conv0.weight  [128,256,1]
maf_extractor.2.conv0.bias  [128]
maf_extractor.2.conv1.weight  [64,384,1]
maf_extractor.2.conv1.bias  [64]
maf_extractor.2.conv2.weight  [5,320,1]
maf_extractor.2.conv2.bias  [5]
maf_extractor.2.Dmap  [431,6890]
points_grid  [1,2,441]
regressor.0.fc1.weight  [1024,2362]
regressor.0.fc1.bias  [1024]
regressor.0.fc2.weight  [1024,1024]
regressor.0.fc2.bias  [1024]
regressor.0.decpose.weight  [144,1024]
regressor.0.decpose.bias  [144]
regressor.0.decshape.weight  [10,1024]
regressor.0.decshape.bias  [10]
regressor.0.deccam.weight  [3,1024]
regressor.0.deccam.bias  [3]
regressor.0.smpl.betas  [64,10]
regressor.0.smpl.global_orient  [64,3]
regressor.0.smpl.body_pose  [64,69]
regressor.0.smpl.shapedirs  [6890,3,10]
regressor.0.smpl.faces_tensor  [13776,3]
regressor.0.smpl.v_template  [6890,3]
regressor.0.smpl.J_regressor  [24,6890]
regressor.0.smpl.posedirs  [207,20670]
regressor.0.smpl.parents  [24]
regressor.0.smpl.lbs_weights  [6890,24]
regressor.0.smpl.J_regressor_extra  [9,6890]
regressor.0.smpl.vertex_joint_selector.extra_joints_idxs  [21]
regressor.0.init_pose  [1,144]
regressor.0.init_shape  [1,10]
regressor.0.init_cam  [1,3]
regressor.1.fc1.weight  [1024,2312]
regressor.1.fc1.bias  [1024]
regressor.1.fc2.weight  [1024,1024]
regressor.1.fc2.bias  [1024]
regressor.1.decpose.weight  [144,1024]
regressor.1.decpose.bias  [144]
regressor.1.decshape.weight  [10,1024]
regressor.1.decshape.bias  [10]
regressor.1.deccam.weight  [3,1024]
regressor.1.deccam.bias  [3]
regressor.1.smpl.betas  [64,10]
regressor.1.smpl.global_orient  [64,3]
regressor.1.smpl.body_pose  [64,69]
regressor.1.smpl.shapedirs  [6890,3,10]
regressor.1.smpl.faces_tensor  [13776,3]
regressor.1.smpl.v_template  [6890,3]
regressor.1.smpl.J_regressor  [24,6890]
regressor.1.smpl.posedirs  [207,20670]
regressor.1.smpl.parents  [24]
regressor.1.smpl.lbs_weights  [6890,24]
regressor.1.smpl.J_regressor_extra  [9,6890]
regressor.1.smpl.vertex_joint_selector.extra_joints_idxs  [21]
regressor.1.init_pose  [1,144]
regressor.1.init_shape  [1,10]
regressor.1.init_cam  [1,3]
regressor.2.fc1.weight  [1024,2312]
regressor.2.fc1.bias  [1024]
regressor.2.fc2.weight  [1024,1024]
regressor.2.fc2.bias  [1024]
regressor.2.decpose.weight  [144,1024]
regressor.2.decpose.bias  [144]
regressor.2.decshape.weight  [10,1024]
regressor.2.decshape.bias  [10]
regressor.2.deccam.weight  [3,1024]
regressor.2.deccam.bias  [3]
regressor.2.smpl.betas  [64,10]
regressor.2.smpl.global_orient  [64,3]
regressor.2.smpl.body_pose  [64,69]
regressor.2.smpl.shapedirs  [6890,3,10]
regressor.2.smpl.faces_tensor  [13776,3]
regressor.2.smpl.v_template  [6890,3]
regressor.2.smpl.J_regressor  [24,6890]
regressor.2.smpl.posedirs  [207,20670]
regressor.2.smpl.parents  [24]
regressor.2.smpl.lbs_weights  [6890,24]
regressor.2.smpl.J_regressor_extra  [9,6890]
regressor.2.smpl.vertex_joint_selector.extra_joints_idxs  [21]
regressor.2.init_pose  [1,144]
regressor.2.init_shape  [1,10]
regressor.2.init_cam  [1,3]
dp_head.predict_u.weight  [25,256,3,3]
dp_head.predict_u.bias  [25]
dp_head.predict_v.weight  [25,256,3,3]
dp_head.predict_v.bias  [25]
dp_head.predict_ann_index.weight  [15,256,3,3]
dp_head.predict_ann_index.bias  [15]
dp_head.predict_uv_index.weight  [25,256,3,3]
dp_head.predict_uv_index.bias  [25]
"""


def expand(listing: str, prefix: str = "") -> dict:
    """Compact listing → {key: shape tuple}."""
    out = {}
    for line in listing.strip().splitlines():
        key, shape = line.split()
        if shape.startswith("BN"):
            c = int(shape[3:-1])
            for name in ("weight", "bias", "running_mean", "running_var"):
                out[f"{prefix}{key}.{name}"] = (c,)
            out[f"{prefix}{key}.num_batches_tracked"] = ()
        else:
            dims = shape.strip("[]")
            out[f"{prefix}{key}"] = tuple(int(d) for d in dims.split(",")) if dims else ()
    return out


def shapes(model) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def diff(got: dict, want: dict) -> str:
    missing = sorted(set(want) - set(got))[:10]
    extra = sorted(set(got) - set(want))[:10]
    bad = [(k, got[k], want[k]) for k in want if k in got and got[k] != want[k]][:10]
    return f"missing {missing}, unexpected {extra}, shape mismatches {bad}"


def test_reference_listing_counts():
    assert len(expand(RESNET50)) == 318
    assert len(expand(RESNET50) | expand(SPIN_HEAD)) == 331
    assert len(expand(RESNET50, "feature_extractor.") | expand(PYMAF_EXTRA)) == 441


def test_hmr_state_dict_equals_spin_checkpoint_layout():
    want = expand(RESNET50) | expand(SPIN_HEAD)
    got = shapes(HMR())
    assert got == want, diff(got, want)


def test_pymaf_official_state_dict_equals_released_layout():
    model = PyMAF(body=None, layout="official")
    want = expand(RESNET50, "feature_extractor.") | expand(PYMAF_EXTRA)
    got = shapes(model)
    assert got == want, diff(got, want)
    sd = model.state_dict()
    for i in range(3):  # smplx stores these as int64
        for name in ("faces_tensor", "parents", "vertex_joint_selector.extra_joints_idxs"):
            assert sd[f"regressor.{i}.smpl.{name}"].dtype == torch.int64
    assert sd["feature_extractor.bn1.num_batches_tracked"].dtype == torch.int64
    # the smpl entries are not trainable (PyMAF never optimises them)
    assert not any(".smpl." in name for name, _ in model.named_parameters())


@pytest.mark.parametrize("backbone", ["resnet50", "hrnet_w48"])
def test_cliff_layout(backbone):
    """Official CLIFF: `encoder.*` + SPIN's head names with fc1 = 2048 + 3 + 157."""
    got = shapes(CLIFF(backbone=backbone))
    head = expand(SPIN_HEAD)
    head["fc1.weight"] = (1024, 2208)
    assert {k: v for k, v in got.items() if not k.startswith("encoder.")} == head
    if backbone == "resnet50":
        assert {k: v for k, v in got.items() if k.startswith("encoder.")} == expand(RESNET50, "encoder.")
    else:  # classification HRNet-W48 (CLIFF's cls_hrnet): trunk + incre/downsamp/final_layer
        for key, shape in {
            "encoder.conv2.weight": (64, 64, 3, 3),
            "encoder.layer1.0.downsample.0.weight": (256, 64, 1, 1),
            "encoder.transition1.1.0.0.weight": (96, 256, 3, 3),
            "encoder.transition3.3.0.0.weight": (384, 192, 3, 3),
            "encoder.stage4.2.fuse_layers.3.0.2.0.weight": (384, 48, 3, 3),
            "encoder.stage4.2.fuse_layers.3.0.1.0.weight": (48, 48, 3, 3),
            "encoder.stage4.2.fuse_layers.0.3.0.weight": (48, 384, 1, 1),
            "encoder.incre_modules.3.0.conv3.weight": (1024, 256, 1, 1),
            "encoder.downsamp_modules.2.0.bias": (1024,),
            "encoder.final_layer.0.weight": (2048, 1024, 1, 1),
        }.items():
            assert got[key] == shape, key


@pytest.mark.parametrize("factory, n_params, n_keys", [
    (resnet18, 11_689_512, 122), (resnet34, 21_797_672, 218), (resnet50, 25_557_032, 320),
    (mobilenet_v2, 3_504_872, 314),
])
def test_backbones_match_torchvision_sizes(factory, n_params, n_keys):
    """Parameter counts of torchvision's ImageNet models (1000 classes)."""
    model = factory(num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert len(model.state_dict()) == n_keys


def test_torchvision_names():
    want = expand(RESNET50) | {"fc.weight": (1000, 2048), "fc.bias": (1000,)}
    assert shapes(resnet50(num_classes=1000)) == want
    mb = shapes(mobilenet_v2(num_classes=1000))
    assert mb["features.0.0.weight"] == (32, 3, 3, 3)
    assert mb["features.1.conv.0.0.weight"] == (32, 1, 3, 3)      # expand ratio 1: dw first
    assert mb["features.2.conv.0.0.weight"] == (96, 16, 1, 1)     # expand 6
    assert mb["features.17.conv.2.weight"] == (320, 960, 1, 1)
    assert mb["features.18.0.weight"] == (1280, 320, 1, 1)
    assert mb["classifier.1.weight"] == (1000, 1280)


def _torchvision_file(tmp_path, with_fc=True, rename=None):
    g = torch.Generator().manual_seed(0)
    sd = {}
    for key, shape in (expand(RESNET50) | ({"fc.weight": (1000, 2048), "fc.bias": (1000,)} if with_fc else {})).items():
        sd[key] = (torch.randint(0, 100, shape, generator=g) if key.endswith("num_batches_tracked")
                   else torch.randn(shape, generator=g))
    if rename:
        sd[rename[1]] = sd.pop(rename[0])
    path = tmp_path / "resnet50-test.pth"
    torch.save(sd, path)
    return path, sd


@pytest.mark.parametrize("with_fc", [True, False])
def test_load_torchvision_weights_into_hmr(tmp_path, with_fc):
    path, sd = _torchvision_file(tmp_path, with_fc)
    model = HMR()
    report = load_torchvision_weights(model, path)
    got = model.state_dict()
    for key, value in sd.items():
        if not key.startswith("fc."):
            assert torch.equal(got[key], value), key
    assert report.ignored == (["fc.bias", "fc.weight"] if with_fc else [])
    assert model.weights_trained is False and model.backbone_pretrained == str(path)


def test_load_torchvision_weights_into_pymaf_and_plain_backbone(tmp_path):
    path, sd = _torchvision_file(tmp_path)
    pymaf = PyMAF()
    load_torchvision_weights(pymaf, path)
    assert torch.equal(pymaf.state_dict()["feature_extractor.layer3.2.conv2.weight"], sd["layer3.2.conv2.weight"])
    classifier = resnet50(num_classes=1000)
    load_torchvision_weights(classifier, path)
    assert torch.equal(classifier.fc.weight, sd["fc.weight"])


def test_load_torchvision_weights_reports_other_mismatches(tmp_path):
    path, _ = _torchvision_file(tmp_path, rename=("layer2.1.conv1.weight", "layer2.1.conv_1.weight"))
    with pytest.raises(CheckpointMismatch) as err:
        load_torchvision_weights(HMR(), path)
    text = str(err.value)
    assert "layer2.1.conv1.weight" in text and "layer2.1.conv_1.weight" in text
    assert err.value.missing == ["layer2.1.conv1.weight"]
    assert err.value.unexpected == ["layer2.1.conv_1.weight"]
