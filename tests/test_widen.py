"""Widening a trained ATPN (edge.train.widen) keeps every output while adding channels that can learn."""
from __future__ import annotations

import pytest
import torch

from edge.errors import ModelError
from edge.model.atpn import build_atpn
from edge.model.spec import ModelSpec
from edge.train.checkpoint import export_model, load_weights


def trained_like(spec: ModelSpec) -> torch.nn.Module:
    """An ATPN with every weight and batch-norm statistic random, so no layer hides behind a zero init."""
    torch.manual_seed(0)
    model = build_atpn(spec)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if name.endswith("running_var") else
                             0.3 * torch.randn_like(tensor))
    return model.eval()


@pytest.mark.parametrize("head", ["integral", "regression"])
def test_widened_network_gives_the_same_outputs_and_has_new_channels(tmp_path, head):
    narrow = trained_like(ModelSpec(landmark_head=head))
    export_model(narrow, str(tmp_path / "narrow.pt"))
    wide = build_atpn(ModelSpec(landmark_head=head, width=1.5))
    wide.load_state_dict(load_weights(str(tmp_path / "narrow.pt"), wide))  # every tensor: strict
    wide.eval()
    crops = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        before, after = narrow(crops), wide(crops)
    for name in ("landmarks", "pose", "track", "heatmap"):
        assert torch.allclose(before[name], after[name], atol=1e-4), name
    assert wide.stem[0][0].weight.shape[0] > narrow.stem[0][0].weight.shape[0]
    new_rows = wide.stem[0][0].weight[narrow.stem[0][0].weight.shape[0]:]
    assert new_rows.abs().sum() > 0  # new channels start random, not dead


def test_a_network_is_not_narrowed(tmp_path):
    export_model(build_atpn(ModelSpec(width=1.5)), str(tmp_path / "wide.pt"))
    with pytest.raises(ModelError, match="widened, not narrowed"):
        load_weights(str(tmp_path / "wide.pt"), build_atpn(ModelSpec()))
