import pytest
import torch

from spikekws.features.augment import FeatureAugment


def _bump(b=2, t=50, f=32, at_t=25, at_f=10):
    x = torch.zeros(b, t, f)
    x[:, at_t, at_f] = 1.0
    return x


def test_eval_mode_and_defaults_are_identity():
    x = torch.randn(3, 40, 16)
    aug = FeatureAugment(freq_warp=[0.8, 1.2], shift=0.2, time_masks=2)
    aug.eval()
    assert torch.equal(aug(x), x)
    assert torch.equal(FeatureAugment()(x), x)


def test_unit_geometry_is_identity_up_to_rounding():
    x = torch.randn(3, 40, 16)
    aug = FeatureAugment(freq_warp=[1.0, 1.0], time_stretch=[1.0, 1.0], shift=1e-9)
    torch.testing.assert_close(aug(x, torch.Generator().manual_seed(0)), x, atol=1e-4, rtol=0)


def test_same_generator_same_output_and_different_seed_differs():
    x = torch.randn(4, 30, 12)
    aug = FeatureAugment(freq_warp=[0.8, 1.2], time_stretch=[0.8, 1.2], shift=0.1,
                         time_masks=1, freq_masks=1, noise_std=0.1)
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    c = aug(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_freq_warp_moves_a_peak_by_the_factor():
    x = _bump(at_f=10)
    y = FeatureAugment(freq_warp=[1.2, 1.2])(x, torch.Generator().manual_seed(0))
    # output channel j reads input channel j / 1.2: the peak moves from 10 to 12
    assert int(y[0, 25].argmax()) == 12
    assert int(y[0].sum(0).argmax()) == 12


def test_time_stretch_moves_a_peak_away_from_the_centre():
    t = 51
    x = _bump(t=t, at_t=35)
    y = FeatureAugment(time_stretch=[1.2, 1.2])(x, torch.Generator().manual_seed(0))
    # about the centre (frame 25): 35 -> 25 + 10 * 1.2 = 37
    assert int(y[0, :, 10].argmax()) == 37


def test_masks_fill_whole_rows_and_columns():
    torch.manual_seed(0)
    x = torch.randn(8, 40, 20)
    aug = FeatureAugment(time_masks=1, time_mask_width=5)
    y = aug(x, torch.Generator().manual_seed(3))
    changed = (y != x).any(dim=2)  # [B, T]
    widths = changed.sum(1)
    assert (widths <= 5).all() and widths.sum() > 0
    for b in range(8):
        rows = changed[b].nonzero().flatten()
        if len(rows):  # masked frames are contiguous and every channel of them changed
            assert rows.max() - rows.min() + 1 == len(rows)
            assert (y[b, rows] != x[b, rows]).all()


@pytest.mark.parametrize("kwargs", [
    {"freq_warp": [1.2, 0.9]}, {"freq_warp": [0.1, 1.0]}, {"time_stretch": "fast"},
    {"shift": 0.9}, {"time_masks": -1}, {"freq_mask_width": 1.5}, {"noise_std": -0.1},
])
def test_bad_options_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        FeatureAugment(**kwargs)


def test_unknown_option_is_type_error_naming_train_augment():
    from spikekws.train.runner import build_augment
    with pytest.raises(TypeError, match="train.augment"):
        build_augment({"pitch": 2})
    assert build_augment({}) is None
