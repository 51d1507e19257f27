"""Attention that keeps one copy of its dropped-out probabilities, not two: the same numbers as
PyTorch's, with half a GiB less at the peak of the issue's MiniLM step on the CPU.

On the CPU, ``scaled_dot_product_attention`` with dropout (training) takes PyTorch's composite
"math" path: scores -> softmax -> dropout -> @ values. For backward, autograd then keeps the
softmax output, the dropout's noise (a float tensor of 0 and 1/(1-p)) and the dropped
probabilities (for the product with the values), each as large as the scores: for 64 passages of
192 tokens and 12 heads, 113 MB each, in every layer. The noise is redundant: wherever the
dropped probabilities are not 0 it is 1/(1-p), and where they are 0 the softmax's backward
multiplies the gradient by its output, 0, anyway. So :class:`AttentionDropout` draws the same
noise (the same random numbers, in the same order), keeps only its output (which the product
with the values keeps anyway) and computes the gradient from it. Everything else is the math
path as PyTorch writes it, op for op: the outputs and the gradients are the same to the bit
(tests/test_attention.py), and so is a training run.

For MiniLM, 64 passages of 192 tokens: 6 x 113 MB fewer kept; a bare step peaks at 5,090 and
5,076 MiB against 5,625 and 5,631 with SDPA, at the same CPU time a step (benchmarks/README.md).

Used by ``lenprof train``'s model (model.py) where the math path would run (CPU, float32, no
autocast, dropout on) and the model calls transformers' attention interface (transformers 5);
anywhere else (GPU kernels, evaluation) it is transformers' own SDPA. ``LENPROF_ACTIVATIONS=plain``
turns it off.
"""

from __future__ import annotations

import math
import os

import torch

NAME = "lenprof_sdpa"
OPT_OUT = "LENPROF_ACTIVATIONS"  # "plain": transformers' SDPA as it is (and no recompute.py)


class AttentionDropout(torch.autograd.Function):
    """``torch.nn.functional.dropout(probs, p)`` that keeps its output for backward, not its noise.

    Only for non-negative inputs (probabilities): the gradient passes where the output is
    positive, times 1/(1-p), as PyTorch's does wherever the input was not 0.
    """

    @staticmethod
    def forward(ctx, probs: torch.Tensor, p: float) -> torch.Tensor:
        noise = torch.empty_like(probs).bernoulli_(1 - p)  # as ATen's CPU dropout draws it
        noise.div_(1 - p)
        out = torch.mul(probs, noise, out=noise)  # probs * noise, in the noise's memory: one block fewer
        ctx.save_for_backward(out)
        ctx.scale = float(torch.ones(1, dtype=probs.dtype).div_(1 - p))  # the noise's one non-zero value
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (out,) = ctx.saved_tensors
        # where the output is 0 the input's gradient is 0 or multiplied by 0 in the softmax's backward
        return torch.ops.aten.threshold_backward(grad, out, 0).mul_(ctx.scale), None


def math_attention(query, key, value, mask, dropout: float, scaling: float | None) -> torch.Tensor:
    """``_scaled_dot_product_attention_math`` (ATen's attention.cpp) for float32, no causal mask,
    no grouped heads, with :class:`AttentionDropout`: (b, h, n, d) -> (b, h, n, d)."""
    scale = math.sqrt(scaling if scaling is not None else 1 / math.sqrt(query.shape[-1]))
    attn = torch.matmul(query * scale, key.transpose(-2, -1) * scale)  # (b, h, n, n)
    if mask is not None:
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=attn.dtype).masked_fill_(mask.logical_not(), -math.inf)
        attn.add_(mask)
    attn = torch._safe_softmax(attn, -1)
    return torch.matmul(AttentionDropout.apply(attn, dropout), value)


def attention_forward(
    module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs
):
    """transformers' attention interface: :func:`math_attention` where PyTorch would take its
    math path with dropout, else transformers' SDPA as it is."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if is_causal is None:
        is_causal = getattr(module, "is_causal", True)
    causal = is_causal and attention_mask is None and query.shape[2] > 1  # as transformers decides
    if (
        dropout > 0
        and torch.is_grad_enabled()
        and query.device.type == "cpu"
        and query.dtype == key.dtype == value.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and not causal
        and getattr(module, "num_key_value_groups", 1) == 1
        and kwargs.get("position_bias") is None
        and not kwargs.get("output_attentions")
    ):
        out = math_attention(query, key, value, attention_mask, dropout, scaling)
        return out.transpose(1, 2).contiguous(), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                  is_causal=is_causal, **kwargs)  # fmt: skip


def use(model) -> bool:
    """Switch a transformers model that uses SDPA to :func:`attention_forward`, unless
    ``LENPROF_ACTIVATIONS=plain`` says not to; True if it did."""
    try:  # transformers 4.53 and later; torch 2.5 and later (the math path's _safe_softmax)
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    except ImportError:
        return False
    if (
        getattr(model.config, "_attn_implementation", None) != "sdpa"
        or os.environ.get(OPT_OUT) == "plain"
        or not hasattr(torch, "_safe_softmax")
    ):
        return False
    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])  # the same masks as SDPA
    model.config._attn_implementation = NAME
    return True
