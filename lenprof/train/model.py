"""The embedding model: a transformers encoder, pooling, L2 normalization; saved so that both
``transformers.AutoModel`` and ``sentence_transformers.SentenceTransformer`` load it."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from lenprof.score.encoder import pooling_of
from lenprof.train import attention, recompute


def default_pooling(model_dir: str) -> str:
    """What the model's sentence-transformers config says, else ``cls`` (BGE's choice): as the
    scan's scoring reads it (``score.encoder.pooling_of``)."""
    return pooling_of(model_dir)


class Embedder(nn.Module):
    def __init__(self, model_name: str, pooling: str = "cls", gradient_checkpointing: bool = False):
        super().__init__()
        from transformers import AutoModel

        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be cls or mean, got {pooling!r}")
        self.encoder, info = AutoModel.from_pretrained(model_name, output_loading_info=True)
        self.name, self.pooling = model_name, pooling
        # every weight read from the model's files, none newly made: they can be read again
        self.from_files = not any(info.get(k) for k in ("missing_keys", "mismatched_keys"))
        if gradient_checkpointing:
            self.encoder.gradient_checkpointing_enable()
        # The same numbers with less host memory kept for backward on the CPU: attention's dropout
        # (attention.py) and the feed-forward activation (recompute.py); LENPROF_ACTIVATIONS=plain: neither.
        attention.use(self.encoder)
        self.recomputed = (
            not gradient_checkpointing
            and os.environ.get(attention.OPT_OUT) != "plain"
            and recompute.wrap(self.encoder) > 0
        )

    def files_state(self) -> dict[str, torch.Tensor]:
        """The starting weights, read again from the model's files (in this module's keys)."""
        from transformers import AutoModel

        return {f"encoder.{k}": v for k, v in AutoModel.from_pretrained(self.name).state_dict().items()}

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        passages: dict | None = None,
        **extra: torch.Tensor,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of one tokenized batch, or with ``passages`` (a second tokenized batch)
        of both, in one call: DDP expects one forward per backward."""
        if passages is not None:
            return self(input_ids, attention_mask, **extra), self(**passages)
        lean = (
            self.recomputed and self.training and torch.is_grad_enabled() and input_ids.device.type == "cpu"
        )
        with recompute.kept_once() if lean else contextlib.nullcontext():
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, **extra
            ).last_hidden_state  # (n, L, d)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (n, L, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return nn.functional.normalize(pooled, dim=-1)  # (n, d)

    def save(self, out: str | Path, tokenizer, max_seq_length: int) -> None:
        """HF weights + tokenizer, plus the sentence-transformers module files (pooling, normalize)."""
        out = Path(out)
        self.encoder.save_pretrained(out)
        tokenizer.save_pretrained(out)
        dim = self.encoder.config.hidden_size
        (out / "1_Pooling").mkdir(exist_ok=True)
        (out / "1_Pooling" / "config.json").write_text(json.dumps({
            "word_embedding_dimension": dim,
            "pooling_mode_cls_token": self.pooling == "cls",
            "pooling_mode_mean_tokens": self.pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        }, indent=2))  # fmt: skip
        (out / "2_Normalize").mkdir(exist_ok=True)
        (out / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ], indent=2))  # fmt: skip
        (out / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False})
        )
