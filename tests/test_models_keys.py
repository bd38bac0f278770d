"""State-dict layouts of the regressors vs the official checkpoints' keys.

The reference listings below are transcribed from the fact sheet
(`spin_pymaf.md` Appendices A–C, `spin_hmr_keys.tsv`, `pymaf_res50_keys.tsv`): one
`key  shape` per line, `X  BN[C]` standing for X.weight/.bias/.running_mean/.running_var
([C]) and X.num_batches_tracked ([]). Blocks the checkpoints repeat (ResNet bottlenecks,
PyMAF's per-level extractor and regressor) are written once as templates and filled in per
block; `test_reference_listing_counts` pins the expanded sizes. They are independent of the
model code.
"""
import pytest
import torch

from core.models import CLIFF, HMR, PyMAF, CheckpointMismatch, load_torchvision_weights
from core.models.backbones import mobilenet_v2, resnet18, resnet34, resnet50


def join_listings(*blocks: str) -> str:
    """Listings → one listing (blank lines between blocks dropped)."""
    return "\n".join(block.strip() for block in blocks)


# torchvision's ResNet-50: stem, then per stage (width, blocks) bottlenecks with 4·width
# outputs; the first block of every stage has the 1×1 projection shortcut ("downsample")
RESNET50_STEM = """
conv1.weight  [64,3,7,7]
bn1  BN[64]
"""

BOTTLENECK = """
{n}.conv1.weight  [{w},{c_in},1,1]
{n}.bn1  BN[{w}]
{n}.conv2.weight  [{w},{w},3,3]
{n}.bn2  BN[{w}]
{n}.conv3.weight  [{c_out},{w},1,1]
{n}.bn3  BN[{c_out}]
"""

DOWNSAMPLE = """
{n}.downsample.0.weight  [{c_out},{c_in},1,1]
{n}.downsample.1  BN[{c_out}]
"""

RESNET50_STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))


def resnet_listing(stages=RESNET50_STAGES) -> str:
    """The ResNet trunk's listing (stem + bottleneck stages)."""
    blocks, c_in = [RESNET50_STEM], 64
    for stage, (width, n_blocks) in enumerate(stages, start=1):
        for b in range(n_blocks):
            fmt = dict(n=f"layer{stage}.{b}", w=width, c_in=c_in, c_out=4 * width)
            blocks += [BOTTLENECK.format(**fmt)] + ([DOWNSAMPLE.format(**fmt)] if b == 0 else [])
            c_in = 4 * width
    return join_listings(*blocks)


# SPIN's IEF head; PyMAF has one per level (prefix "regressor.{i}.", its own fc1 width)
IEF_HEAD = """
{p}fc1.weight  [1024,{fc1_in}]
{p}fc1.bias  [1024]
{p}fc2.weight  [1024,1024]
{p}fc2.bias  [1024]
{p}decpose.weight  [144,1024]
{p}decpose.bias  [144]
{p}decshape.weight  [10,1024]
{p}decshape.bias  [10]
{p}deccam.weight  [3,1024]
{p}deccam.bias  [3]
{p}init_pose  [1,144]
{p}init_shape  [1,10]
{p}init_cam  [1,3]
"""

# the SMPL layer each PyMAF regressor keeps in its state dict (buffers)
PYMAF_SMPL = """
{p}smpl.betas  [64,10]
{p}smpl.global_orient  [64,3]
{p}smpl.body_pose  [64,69]
{p}smpl.shapedirs  [6890,3,10]
{p}smpl.faces_tensor  [13776,3]
{p}smpl.v_template  [6890,3]
{p}smpl.J_regressor  [24,6890]
{p}smpl.posedirs  [207,20670]
{p}smpl.parents  [24]
{p}smpl.lbs_weights  [6890,24]
{p}smpl.J_regressor_extra  [9,6890]
{p}smpl.vertex_joint_selector.extra_joints_idxs  [21]
"""

# one mesh-aligned feature extractor per PyMAF level
PYMAF_MAF = """
maf_extractor.{i}.conv0.weight  [128,256,1]
maf_extractor.{i}.conv0.bias  [128]
maf_extractor.{i}.conv1.weight  [64,384,1]
maf_extractor.{i}.conv1.bias  [64]
maf_extractor.{i}.conv2.weight  [5,320,1]
maf_extractor.{i}.conv2.bias  [5]
maf_extractor.{i}.Dmap  [431,6890]
"""

PYMAF_DECONV = """
deconv_layers.0.weight  [2048,256,4,4]
deconv_layers.1  BN[256]
deconv_layers.3.weight  [256,256,4,4]
deconv_layers.4  BN[256]
deconv_layers.6.weight  [256,256,4,4]
deconv_layers.7  BN[256]
"""

PYMAF_DP_HEAD = """
dp_head.predict_u.weight  [25,256,3,3]
dp_head.predict_u.bias  [25]
dp_head.predict_v.weight  [25,256,3,3]
dp_head.predict_v.bias  [25]
dp_head.predict_ann_index.weight  [15,256,3,3]
dp_head.predict_ann_index.bias  [15]
dp_head.predict_uv_index.weight  [25,256,3,3]
dp_head.predict_uv_index.bias  [25]
"""

PYMAF_FC1_IN = (2362, 2312, 2312)   # 157 + point features: 5·21² (grid), 5·431 (mesh-aligned)

RESNET50 = resnet_listing()
SPIN_HEAD = IEF_HEAD.format(p="", fc1_in=2205)

PYMAF_EXTRA = join_listings(
    PYMAF_DECONV,
    *(PYMAF_MAF.format(i=i) for i in range(3)),
    "points_grid  [1,2,441]",
    *(join_listings(IEF_HEAD.format(p=f"regressor.{i}.", fc1_in=w), PYMAF_SMPL.format(p=f"regressor.{i}."))
      for i, w in enumerate(PYMAF_FC1_IN)),
    PYMAF_DP_HEAD,
)


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
