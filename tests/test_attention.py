"""lenprof train's attention (``train/attention.py``): PyTorch's numbers to the bit, with one
scores-sized tensor fewer kept for backward in each layer."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lenprof.count.tokenizer import packaged_model_weights  # noqa: E402
from lenprof.train import attention  # noqa: E402
from lenprof.train.model import Embedder  # noqa: E402

BATCH, HEADS, LENGTH = 6, 4, 17


def tiny_bert():
    config = transformers.BertConfig(vocab_size=100, hidden_size=48, num_hidden_layers=2, num_attention_heads=HEADS,
                                     intermediate_size=96, attn_implementation="sdpa")  # fmt: skip
    torch.manual_seed(0)
    return transformers.BertModel(config).train()


def inputs(padded: bool):
    ids = torch.randint(5, 100, (BATCH, LENGTH), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    if padded:
        mask[2, 9:] = 0
        mask[4, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def step(model, batch):
    """One forward and backward with dropout: output, every gradient, the random state after."""
    torch.manual_seed(7)
    hidden = model(**batch).last_hidden_state
    ((hidden[:, 0] ** 2).sum() + hidden.pow(3).mean()).backward()
    return (
        hidden.detach(),
        {n: p.grad for n, p in model.named_parameters() if p.grad is not None},
        torch.rand(4),
    )


@pytest.mark.parametrize("padded", [True, False])
def test_outputs_gradients_and_random_state_equal_pytorchs_sdpa_to_the_bit(padded, monkeypatch):
    stock = tiny_bert()
    ours = copy.deepcopy(stock)
    assert attention.use(ours) and ours.config._attn_implementation == attention.NAME
    calls = []
    math = attention.math_attention
    monkeypatch.setattr(attention, "math_attention", lambda *a: calls.append(1) or math(*a))
    (h1, g1, r1), (h2, g2, r2) = step(stock, inputs(padded)), step(ours, inputs(padded))
    assert len(calls) == 2  # both layers took lenprof's path, none fell back to SDPA
    assert torch.equal(h1, h2) and torch.equal(r1, r2)
    assert g1.keys() == g2.keys() and all(torch.equal(g1[n], g2[n]) for n in g1)


def saved_bytes(model, batch) -> int:
    """Bytes autograd keeps for backward in one forward (each storage once)."""
    kept: dict[int, int] = {}

    def pack(t):
        kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**batch)
    return sum(kept.values())


def test_one_scores_sized_tensor_fewer_is_kept_for_backward_in_each_layer():
    stock = tiny_bert()
    ours = copy.deepcopy(stock)
    attention.use(ours)
    scores = BATCH * HEADS * LENGTH * LENGTH * 4  # float32 (batch, heads, n, n): the dropout's noise
    saved = saved_bytes(stock, inputs(True)) - saved_bytes(ours, inputs(True))
    assert saved >= stock.config.num_hidden_layers * scores, (saved, scores)


def test_evaluation_and_other_attention_are_left_to_transformers(monkeypatch):
    model = tiny_bert()
    attention.use(model)
    model.eval()  # no dropout: SDPA's own fused kernel
    monkeypatch.setattr(attention, "math_attention", lambda *a: pytest.fail("math path without dropout"))
    with torch.no_grad():
        model(**inputs(True))
    eager = transformers.BertModel(transformers.BertConfig(num_hidden_layers=1, attn_implementation="eager"))
    assert not attention.use(eager)
    monkeypatch.setenv(attention.OPT_OUT, "plain")
    assert not attention.use(tiny_bert())


def test_lenprof_trains_the_packaged_model_with_it_and_saves_a_plain_sdpa_config(tmp_path):
    model = Embedder(str(packaged_model_weights()), "mean")
    assert model.encoder.config._attn_implementation == attention.NAME
    model.encoder.save_pretrained(tmp_path)
    assert transformers.AutoModel.from_pretrained(tmp_path).config._attn_implementation == "sdpa"
