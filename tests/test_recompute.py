"""The feed-forward activation recomputed for backward (``train/recompute.py``): the same numbers
to the bit, its output no longer kept, and nothing left behind from one step to the next."""

from __future__ import annotations

import contextlib
import copy
import gc

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lenprof.count.tokenizer import packaged_model_weights  # noqa: E402
from lenprof.train import recompute  # noqa: E402
from lenprof.train.model import Embedder  # noqa: E402

BATCH, LENGTH, INTERMEDIATE, LAYERS = 6, 17, 96, 2


def tiny_bert():
    config = transformers.BertConfig(vocab_size=100, hidden_size=48, num_hidden_layers=LAYERS, num_attention_heads=4,
                                     intermediate_size=INTERMEDIATE, attn_implementation="sdpa")  # fmt: skip
    torch.manual_seed(0)
    return transformers.BertModel(config).train()


BATCH_INPUTS = {
    "input_ids": torch.randint(5, 100, (BATCH, LENGTH), generator=torch.Generator().manual_seed(1)),
    "attention_mask": torch.ones(BATCH, LENGTH, dtype=torch.long),
}


def step(model, lean: bool, monkeypatch):
    """One forward and backward: output, gradients, bytes kept for backward. Not lean: the same
    hooks, nothing recomputed."""
    kept: dict[int, int] = {}
    pack = recompute._pack

    def counting(t):
        packed = pack(t)
        if isinstance(packed, torch.Tensor):
            kept[packed.untyped_storage().data_ptr()] = packed.untyped_storage().nbytes()
        return packed

    monkeypatch.setattr(recompute, "_pack", counting)
    torch.manual_seed(7)
    hooks = torch.autograd.graph.saved_tensors_hooks(lambda t: recompute._pack(t), recompute._unpack)
    with recompute.kept_once() if lean else hooks:
        hidden = model(**BATCH_INPUTS).last_hidden_state
    ((hidden[:, 0] ** 2).sum() + hidden.pow(3).mean()).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return hidden.detach(), grads, sum(kept.values())


def test_gradients_equal_to_the_bit_and_the_activation_output_is_not_kept(monkeypatch):
    plain = tiny_bert()
    ours = copy.deepcopy(plain)
    assert recompute.wrap(ours) == LAYERS
    h1, g1, kept1 = step(plain, False, monkeypatch)
    h2, g2, kept2 = step(ours, True, monkeypatch)
    assert torch.equal(h1, h2)
    assert g1.keys() == g2.keys() and all(torch.equal(g1[n], g2[n]) for n in g1)
    assert (
        kept1 - kept2 == LAYERS * BATCH * LENGTH * INTERMEDIATE * 4
    )  # one float32 (batch, n, intermediate) a layer


def test_steps_leave_nothing_behind_even_where_a_graph_never_runs_backward():
    """BERT's pooler output is computed and never used: its graph must still be freed."""
    model = tiny_bert()
    recompute.wrap(model)

    def alive() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))

    counts = []
    for _ in range(4):
        with recompute.kept_once():
            hidden = model(**BATCH_INPUTS).last_hidden_state
        hidden.sum().backward()
        del hidden
        model.zero_grad(set_to_none=True)
        counts.append(alive())
    assert counts[1:] == counts[:-1], counts


def test_lenprof_trains_with_it_on_the_cpu_unless_told_not_to(monkeypatch):
    entered = []

    @contextlib.contextmanager
    def spy():
        entered.append(1)
        yield

    monkeypatch.setattr(recompute, "kept_once", spy)
    model = Embedder(str(packaged_model_weights()), "mean")
    batch = {
        "input_ids": torch.tensor([[101, 2023, 102]]),
        "attention_mask": torch.ones(1, 3, dtype=torch.long),
    }
    model.train()(**batch)
    with torch.no_grad():
        model(**batch)
    model.eval()(**batch)
    assert model.recomputed and entered == [1]  # training with gradients only
    monkeypatch.setenv("LENPROF_ACTIVATIONS", "plain")
    assert not Embedder(str(packaged_model_weights()), "mean").recomputed
