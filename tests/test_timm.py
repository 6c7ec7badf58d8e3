"""Every variant is a timm model named ra_<name>."""
import pytest
import timm
import torch

import resnet_ablate as ra
from resnet_ablate.timm_models import timm_name


def test_every_variant_is_registered_with_timm():
    names = timm.list_models("ra_*")
    assert sorted(names) == sorted(timm_name(n) for n in ra.list_models())
    assert "ra_resnet56_a" in names and "ra_plain20" in names and "ra_resnet152_c" in names


def test_timm_create_model_with_overrides():
    model = timm.create_model("ra_resnet56_a", num_classes=100)
    assert model.spec.name == "resnet56-A" and model.spec.num_classes == 100
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    one_channel = timm.create_model("ra_plain20", in_chans=1)
    assert one_channel.conv1.in_channels == 1


@pytest.mark.parametrize("name", ra.list_models("*20*") + ["resnet18-C", "resnet50-B"])
def test_timm_round_trip_matches_registry(name):
    torch.manual_seed(0)
    a = timm.create_model(timm_name(name))
    torch.manual_seed(0)
    b = ra.create_model(name)
    assert a.spec == b.spec
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_timm_classifier_interface():
    model = timm.create_model("ra_resnet20_b")
    assert model.get_classifier().out_features == 10
    model.reset_classifier(5)
    assert model.num_classes == 5 and model.spec.num_classes == 5
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_timm_refuses_pretrained_and_bad_overrides():
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("ra_resnet20_a", pretrained=True)
    with pytest.raises(ValueError, match="unknown model override"):
        timm.create_model("ra_resnet20_a", drop_rate=0.1)
