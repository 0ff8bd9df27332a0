"""load_points: the model's columns are taken from arrays the same way as from .bin files."""
import numpy as np
import pytest
import torch

from perception3d.apis.inference import load_points


def test_raw_layout_array_is_cut_like_a_file(tmp_path):
    raw = np.arange(12 * 6, dtype=np.float32).reshape(12, 6)
    path = tmp_path / "frame.bin"
    raw.tofile(path)
    from_file = load_points(path, load_dim=6, use_dim=5)
    assert from_file.shape == (12, 5)
    assert torch.equal(load_points(raw, load_dim=6, use_dim=5), from_file)
    assert torch.equal(load_points(raw[:, :5], load_dim=6, use_dim=5), from_file)
    assert torch.equal(load_points(raw, load_dim=6, use_dim=[0, 1, 2, 4])[:, 3], torch.from_numpy(raw[:, 4]))


def test_other_widths_are_rejected_with_both_widths_named():
    with pytest.raises(ValueError, match="4 columns; the model reads 5 .* of the 6"):
        load_points(np.zeros((3, 4), np.float32), load_dim=6, use_dim=5)
