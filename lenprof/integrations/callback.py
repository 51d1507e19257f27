"""``LossHealthCallback``: lenprof's loss watchdog inside any Hugging Face ``Trainer``.

It runs the watchdog ``lenprof train`` runs (health.py, guard.py) on FlagEmbedding's trainers,
sentence-transformers' ``SentenceTransformerTrainer`` or a plain ``Trainer``, from numbers the
Trainer's own log does not keep:

- the full-precision loss of every optimizer step (the mean over its gradient-accumulation
  micro-batches), read where it is made: a wrapper around ``trainer.compute_loss`` when
  attached with :meth:`LossHealthCallback.attach`, else a forward hook on ``loss_module`` (a
  sentence-transformers loss) or on the model (whose output carries ``.loss``, as
  FlagEmbedding's and transformers' models do);
- the gradient norm before clipping: the value the Trainer's clipping returns when attached,
  else summed from per-parameter hooks as gradients land (exact on one process without fp16;
  with fp16 the gradients are still loss-scaled there, so the norm is left out);
- the learning rate the step uses, from the optimizer.

It writes ``metrics.jsonl`` (one line a step), ``train_report.json`` and the events that
``lenprof diagnose`` reads, into the Trainer's ``output_dir``. On a collapse it restores the
snapshot, cuts the learning rate and warms it up again (``on_collapse="recover"``, guard.py),
when the scheduler is a ``LambdaLR`` (transformers' linear, cosine and constant schedules are);
any other scheduler keeps state the callback cannot cut safely, so it stops instead. A stop
(``control.should_training_stop``) also restores the snapshot first, so what the host then
saves is those weights, and ``train_report.json`` says so.

Given an eval set (``evaluator``: sentence-transformers' ``InformationRetrievalEvaluator`` or
any evaluator reporting recall@10 and MRR@10; or ``eval_data``: FlagEmbedding-style rows), it
judges the run as ``lenprof train`` does (lenprof.train.heldout): scored at the start, at
healthy snapshots and at the end, the best weights measured are what the model holds when
training ends (as ``load_best_model_at_end`` would). When those are the starting weights, it
saves them to the output folder and raises :class:`TrainingFailed` from ``on_train_end``: a
script that goes on to save or push the model stops there instead, and exits 1 as any uncaught
error does; a notebook can catch it, with the starting weights in the model.

    >>> from transformers import TrainerCallback
    >>> issubclass(LossHealthCallback, TrainerCallback)
    True
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
from transformers import TrainerCallback

from lenprof.integrations.measures import (
    TrainingFailed,
    evaluator_measure,
    rows_measure,
    sentence_transformer_encode,
    untouched,
)
from lenprof.train.guard import Guard, MetricsLog, current_lr
from lenprof.train.heldout import Judge
from lenprof.train.snapshot import Snapshot


def _loss_of(output) -> torch.Tensor | None:
    """The scalar loss inside a forward's output: a tensor, ``.loss``, ``["loss"]`` or ``[0]``."""
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        output = output[0]
    elif not isinstance(output, torch.Tensor):
        output = getattr(output, "loss", None) if not isinstance(output, dict) else output.get("loss")
    return output if isinstance(output, torch.Tensor) and output.numel() == 1 else None


class LossHealthCallback(TrainerCallback):
    """Watch the loss of a Hugging Face Trainer run, step by step.

    ``candidates``: candidates per query (``batch * group`` with in-batch negatives), to spot a
    plateau at ln(candidates); inferred for sentence-transformers' MultipleNegativesRankingLoss
    (batch * (columns - 1)). ``output_dir``: where metrics.jsonl goes [the Trainer's].
    ``evaluator`` or ``eval_data`` (rows or a JSONL path; ``encode`` embeds their texts, by
    default the model's own sentence-transformers ``encode``; ``instructions`` formats them):
    held-out retrieval, measured at most every ``eval_steps`` steps [``collapse_steps``].
    """

    def __init__(self, output_dir: str | None = None, candidates: int | None = None, on_collapse: str = "recover",
                 collapse_steps: int = 20, max_recoveries: int = 3, snapshot: str = "memory",
                 loss_module: torch.nn.Module | None = None, log=None, evaluator=None, eval_data=None,
                 encode=None, instructions=None, eval_steps: int | None = None):  # fmt: skip
        if on_collapse not in ("recover", "stop"):
            raise ValueError(f"on_collapse must be recover or stop, got {on_collapse!r}")
        self.output_dir, self.candidates, self.on_collapse = output_dir, candidates, on_collapse
        self.collapse_steps, self.max_recoveries, self.snapshot_where = (
            collapse_steps,
            max_recoveries,
            snapshot,
        )
        self.loss_module = loss_module
        if evaluator is not None and eval_data is not None:
            raise ValueError("LossHealthCallback: give evaluator or eval_data, not both")
        self.evaluator, self.eval_data, self.encode, self.instructions = (
            evaluator,
            eval_data,
            encode,
            instructions,
        )
        self.eval_steps = eval_steps or collapse_steps
        self.judge: Judge | None = None
        self.failed: str | None = None
        self.log = log or (lambda m: print(m, file=sys.stderr, flush=True))
        self.guard: Guard | None = None
        self.stopped: str | None = None
        self._attached = False
        self._losses: list[torch.Tensor] = []
        self._squares: dict[int, torch.Tensor] = {}
        self._clipped_norm: float | None = None
        self._hooks: list = []
        self._pending: dict | None = None

    # -- where the numbers come from ---------------------------------------------------------
    def attach(self, trainer) -> LossHealthCallback:
        """Wrap ``trainer.compute_loss`` (the loss of any Trainer subclass) and its gradient
        clipping (the norm before clipping), then add this callback to it."""
        compute_loss = trainer.compute_loss

        def watched_compute_loss(*args, **kwargs):
            out = compute_loss(*args, **kwargs)
            self._capture(out[0] if isinstance(out, tuple) else out)
            return out

        trainer.compute_loss = watched_compute_loss
        clip = getattr(trainer, "_clip_grad_norm", None)
        if callable(clip):

            def watched_clip(*args, **kwargs):
                norm = clip(*args, **kwargs)
                self._clipped_norm = float(norm) if norm is not None else None
                return norm

            trainer._clip_grad_norm = watched_clip
        self._attached = True
        trainer.add_callback(self)
        return self

    def _capture(self, loss) -> None:
        if isinstance(loss, torch.Tensor) and loss.requires_grad and torch.is_grad_enabled():
            self._losses.append(loss.detach().float().reshape(()))

    def _hook_forward(self, model, capture: bool) -> None:
        def after(module, args, output):
            self._capture(_loss_of(output))

        def before(module, args, kwargs):  # sentence-transformers: (sentence_features, labels)
            features = args[0] if args else kwargs.get("sentence_features")
            if (
                self.guard
                and self.guard.watchdog.candidates is None
                and "MultipleNegatives" in type(module).__name__
            ):
                if isinstance(features, (list, tuple)) and len(features) >= 2 and "input_ids" in features[0]:
                    k = features[0]["input_ids"].shape[0] * (len(features) - 1)
                    self.guard.watchdog.candidates = k

        target = self.loss_module if self.loss_module is not None else model
        if capture:
            self._hooks.append(target.register_forward_hook(after))
        if self.loss_module is not None:
            self._hooks.append(self.loss_module.register_forward_pre_hook(before, with_kwargs=True))

    def _hook_gradients(self, model) -> None:
        for i, param in enumerate(p for p in model.parameters() if p.requires_grad):

            def landed(p, i=i):
                if p.grad is not None:
                    self._squares[i] = p.grad.detach().float().pow(2).sum()

            self._hooks.append(param.register_post_accumulate_grad_hook(landed))

    # -- the Trainer's events ---------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        out = Path(self.output_dir or args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.precision = "fp16" if args.fp16 else "bf16" if args.bf16 else "no"
        self.world = max(1, args.world_size)
        self._hook_forward(model, capture=not self._attached)
        self._hook_gradients(model)
        resume = state.global_step if state.global_step > 0 else None
        self.metrics = MetricsLog(out / "metrics.jsonl", resume, state.is_world_process_zero)
        self.snapshot = Snapshot(self.snapshot_where, out, rank=args.process_index)
        # after a restore the rate warms up again, over twice the run's own warmup (at least 10 steps)
        rewarm = max(10, 2 * args.get_warmup_steps(state.max_steps)) if state.max_steps > 0 else 10
        self.guard = Guard(self.candidates, self.snapshot, self.collapse_steps, self.on_collapse, self.max_recoveries,
                           self.precision, self.log if state.is_world_process_zero else (lambda m: None),
                           rewarm=rewarm)  # fmt: skip
        if resume:
            self.guard.load_state({}, self.metrics.kept)
        self.lr = args.learning_rate
        measure = self._measure(model)
        if measure is not None:
            self.judge = Judge(untouched(measure, model), self.snapshot, self.eval_steps, self.guard.log,
                               strict=lambda: self.guard.recoveries > 0)  # fmt: skip
            base = self.judge.start(state.global_step + 1, model)
            self.guard.log(f"lenprof: held-out {base} before training ({base.queries} queries)")
        else:
            # The starting weights are the first healthy ones: a run that breaks at once can
            # still go back to where it began.
            self.snapshot.take(state.global_step + 1, model, base=not resume)

    def _measure(self, model):
        if self.evaluator is not None:
            return evaluator_measure(self.evaluator, model)
        if self.eval_data is not None:
            return rows_measure(
                self.eval_data, self.encode or sentence_transformer_encode(model), self.instructions
            )
        return None

    def _step_numbers(self) -> tuple[float, float | None]:
        losses, self._losses = self._losses, []
        if not losses:
            raise RuntimeError(
                "LossHealthCallback saw no training loss: pass loss_module=your_loss (sentence-transformers), "
                "or use LossHealthCallback(...).attach(trainer)"
            )
        squares, self._squares = self._squares, {}
        grad_sq = torch.stack(list(squares.values())).sum() if squares else torch.tensor(float("nan"))
        numbers = torch.stack([torch.stack(losses).mean(), grad_sq.to(losses[0].device)])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(numbers)  # every process decides on the same numbers
            numbers /= torch.distributed.get_world_size()
        loss, grad_sq_value = (float(x) for x in numbers.cpu())
        grad_norm = self._clipped_norm if self._clipped_norm is not None else math.sqrt(grad_sq_value)
        self._clipped_norm = None
        if self.precision == "fp16" and not self._attached:
            grad_norm = None  # loss-scaled gradients: not the true norm
        return loss, grad_norm

    def _observe(self, step: int, model, optimizer, before_update: bool) -> None:
        loss, grad_norm = self._step_numbers()
        lr = current_lr(optimizer) if optimizer is not None and before_update else None
        events = self.guard.observe(step, loss, grad_norm, lr)
        if before_update and self.guard.snapshot_due(step, events):  # weights that made a healthy loss
            if self.judge is None:
                self.snapshot.take(step, model)
            elif self.judge.due(step):
                self.judge.consider(step, model)
        self._pending = {"step": step, "loss": loss, "grad_norm": grad_norm, "lr": lr, "spread": None,
                         "events": events}  # fmt: skip

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        self._observe(state.global_step + 1, model, optimizer, before_update=True)

    def on_step_end(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        if self._pending is None and self._losses:  # a transformers without on_pre_optimizer_step
            self._observe(state.global_step, model, optimizer, before_update=False)
        if self._pending is None:
            return
        record, self._pending = self._pending, None
        events = record["events"]
        self.metrics.write(
            {"step": record["step"], "epoch": state.epoch, **record, "events": [e.kind for e in events]}
        )
        self.guard.react(record["step"], events, model, optimizer, lr_scheduler)
        if self.guard.stopped:
            self.stopped = self.guard.stopped
            control.should_training_stop = True

    def on_train_end(self, args, state, control, model=None, **kwargs):
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self.metrics.close()
        weights, report = self.guard.weights, {}
        if self.judge is not None:  # the held-out set decides what the model ends with
            weights, saved = self.judge.finish(state.global_step, model, bool(self.guard.stopped))
            report = {"eval_base": self.judge.base.to_dict(), "eval_trained": saved.to_dict(),  # type: ignore[union-attr]
                      "heldout": self.judge.history}  # fmt: skip
            if weights == "base":
                self.failed = self.judge.failure(self.lr, self.guard.recoveries > 0)
                if not self.guard.stopped:  # a watchdog stop has its own event
                    self.guard.stopped = self.failed
                    self.guard.events.append(
                        {"step": state.global_step, "kind": "stopped", "restored_step": self.snapshot.step}
                    )
        self.snapshot.discard()
        if state.is_world_process_zero:
            report = {
                "trainer": "transformers.Trainer with lenprof's LossHealthCallback",
                "candidates_per_query": self.guard.watchdog.candidates,
                "precision": self.precision,
                "world_size": self.world,
                "steps": state.global_step,
                "recoveries": self.guard.recoveries,
                "events": self.guard.events,
                "health": self.guard.watchdog.summary(),
                "stopped": self.guard.stopped,
                "weights": weights,
                **report,
            }
            (self.out / "train_report.json").write_text(json.dumps(report, indent=2))
        if self.failed:
            if state.is_world_process_zero:
                for name in ("save_pretrained", "save"):  # the host's own way to save the model it holds
                    if callable(getattr(model, name, None)):
                        getattr(model, name)(str(self.out))
                        break
            self.guard.log(f"lenprof: stopped: {self.failed}")
            raise TrainingFailed(f"{self.failed}. The starting weights are in {self.out}")
