"""The superpixel benchmark's classifier: one seed, one initialisation, whatever
the graph kind; the learned clustering samples its centres as in evaluation."""
import torch

from benchmarks.superpixels.model import GraphClassifier


def test_every_graph_kind_starts_from_the_same_classifier():
    """The learned clustering is built on a side stream of the generator: one seed
    gives one classifier initialisation (and one generator state) for every kind."""
    torch.manual_seed(3)
    fixed = GraphClassifier("hgconv", learned_clustering=False, width=8, num_layers=1)
    after_fixed = torch.rand(3)
    torch.manual_seed(3)
    learned = GraphClassifier("hgconv", learned_clustering=True, width=8, num_layers=1)
    assert torch.equal(torch.rand(3), after_fixed)
    learned_state = learned.state_dict()
    for key, value in fixed.state_dict().items():
        assert torch.equal(learned_state[key], value), key
    assert learned.cluster.train_sampling == "seeded"


def test_the_learned_kind_classifies_the_fixed_kinds_graphs_at_initialisation():
    """Before training, the model's own clustering of a digit builds the graph that
    the parameter-free transform builds (the two kinds start level)."""
    from pyg_hgconv.transforms import ToGroupGraph
    from tests.helpers.images import structured_image

    digits = structured_image(3, 1, 28, 28, seed=1).clamp(0, 1)
    model = GraphClassifier("hgconv", learned_clustering=True, width=8, num_layers=1).eval()
    transform = ToGroupGraph(num_groups=75)
    with torch.no_grad():
        graphs = model.cluster(digits, as_batch=True)
        for i, digit in enumerate(digits):
            alone = transform(digit)
            assert torch.equal(graphs[i].edge_index, alone.edge_index)
            assert torch.equal(graphs[i].center_pixel, alone.center_pixel)
            torch.testing.assert_close(graphs[i].x, alone.x, rtol=1e-4, atol=1e-5)
