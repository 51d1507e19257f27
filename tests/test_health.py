"""Loss health: the live watchdog on crafted streams, and `lenprof diagnose` on HF trainer_state.json."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from lenprof.cli import main
from lenprof.train.diagnose import diagnose, read_history
from lenprof.train.health import Step, Watchdog, candidates_per_query

NAN = float("nan")


def trainer_state(losses, grad_norms, path, logging_steps=10):
    """A trainer_state.json as transformers' Trainer writes it (NaN as a bare JSON NaN)."""
    history = [
        {
            "epoch": round(i / len(losses), 4),
            "grad_norm": g,
            "learning_rate": 1e-5,
            "loss": round(loss, 4),
            "step": (i + 1) * logging_steps,
        }
        for i, (loss, g) in enumerate(zip(losses, grad_norms, strict=True))
    ]
    history.append({"epoch": 1.0, "step": len(losses) * logging_steps, "total_flos": 0.0, "train_loss": 0.5, "train_runtime": 12.3,
                    "train_samples_per_second": 10.0, "train_steps_per_second": 1.0})  # fmt: skip
    state = {
        "best_metric": None, "best_model_checkpoint": None, "epoch": 1.0, "eval_steps": 500,
        "global_step": len(losses) * logging_steps, "is_hyper_param_search": False, "is_local_process_zero": True,
        "is_world_process_zero": True, "log_history": history, "logging_steps": logging_steps,
        "max_steps": len(losses) * logging_steps, "num_input_tokens_seen": 0, "num_train_epochs": 1, "save_steps": 500,
        "total_flos": 0.0, "train_batch_size": 4, "trial_name": None, "trial_params": None,
    }  # fmt: skip
    path.write_text(json.dumps(state, indent=2))  # json writes float("nan") as NaN, as the Trainer's does
    return path


def kinds(path, *args):
    result = CliRunner().invoke(
        main, ["diagnose", str(path), "--format", "json", *args], catch_exceptions=False
    )
    return result.exit_code, {f["kind"]: f["steps"] for f in json.loads(result.stdout)["findings"]}


def test_healthy_run_with_rounded_easy_batches(tmp_path):
    losses = [2.0, 1.8, 1.5, 1.0, 0.00004, 0.7, 0.5, 0.00001, 0.4, 0.4, 0.35, 0.3]  # 0.0 twice
    grads = [5.0, 5.0, 4.0, 3.0, 0.02, 2.0, 2.0, 0.01, 1.5, 1.5, 1.5, 1.0]
    code, found = kinds(trainer_state(losses, grads, tmp_path / "trainer_state.json"))
    assert (code, found) == (0, {"rounding_zero": "50, 80", "healthy": "10-120"})


def test_hidden_nan_behind_zero_losses(tmp_path):
    losses = [2.0, 1.8, 0.0, 0.0, 1.7, 0.0, 1.6]
    grads = [5.0, 4.0, NAN, NAN, 3.0, math.inf, 3.0]
    code, found = kinds(trainer_state(losses, grads, tmp_path / "trainer_state.json"))
    assert (code, found) == (1, {"hidden_nan": "30-40, 60"})


def test_hidden_nan_behind_finite_non_zero_losses(tmp_path):
    """The Trainer's logging_nan_inf_filter logs the average so far in a NaN step's place: a
    loss like any other, over a NaN gradient norm."""
    losses = [2.0, 1.8, 1.75, 1.6, 1.5, 1.4, 1.3, 1.2]
    grads = [5.0, 4.0, NAN, 3.0, math.inf, 3.0, 2.0, 2.0]
    code, found = kinds(trainer_state(losses, grads, tmp_path / "trainer_state.json"))
    assert (code, found) == (1, {"hidden_nan": "30, 50"})


def test_a_run_of_logged_zeros_goes_on_across_a_hidden_nan_among_them(tmp_path):
    losses = [2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]  # 0.0 six steps in a row, one over a NaN gradient
    grads = [5.0, 0.1, 0.1, 0.1, NAN, 0.1, 0.1, 2.0]
    code, found = kinds(trainer_state(losses, grads, tmp_path / "trainer_state.json"))
    assert code == 1 and found["hidden_nan"] == "50" and found["persistent_zero"] == "20-40, 60-70"


def test_a_history_without_a_logged_loss_is_exit_2_saying_why(tmp_path):
    path = trainer_state([], [], tmp_path / "trainer_state.json")
    result = CliRunner().invoke(main, ["diagnose", str(path)])
    assert result.exit_code == 2
    assert "no logged loss" in result.output and "logging_steps" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_exact_zeros_with_zero_gradient(tmp_path):
    path = trainer_state([0.0] * 6, [0.0] * 6, tmp_path / "trainer_state.json", logging_steps=1)
    assert kinds(path) == (1, {"exact_zero": "1-6"})
    assert kinds(path, "--batch-size", "1", "--group-size", "1", "--no-in-batch-neg") == (
        1,
        {"single_candidate": "1-6"},
    )


def test_persistent_rounded_zeros_are_collapse(tmp_path):
    losses = [2.0, 1.0] + [0.00002] * 6
    path = trainer_state(losses, [3.0, 2.0] + [1e-4] * 6, tmp_path / "trainer_state.json", logging_steps=1)
    assert kinds(path) == (1, {"persistent_zero": "3-8"})


def test_plateau_at_ln_candidates(tmp_path):
    ln8 = math.log(8)
    losses = [ln8 * f for f in (1.0, 0.99, 1.01, 1.0, 0.995, 1.005, 1.0, 1.0)]
    path = trainer_state(losses, [0.5] * 8, tmp_path / "trainer_state.json")
    assert kinds(path, "--group-size", "8", "--no-in-batch-neg") == (1, {"uniform_collapse": "10-80"})
    # ln 64 is elsewhere: no collapse, and 8 logged losses are too few for a trend
    assert kinds(path, "--candidates", "64") == (0, {"too_short": "10-80"})


def test_diagnose_reads_a_folder_and_metrics_jsonl(tmp_path):
    run = tmp_path / "run" / "checkpoint-80"
    run.mkdir(parents=True)
    trainer_state([2.0, 1.0], [1.0, 1.0], run / "trainer_state.json")
    assert kinds(tmp_path / "run") == (0, {"too_short": "10-20"})
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(
        "".join(
            json.dumps({"step": i, "loss": v, "grad_norm": 1.0, "lr": 1e-5}) + "\n"
            for i, v in enumerate([2.0, 1.0, 0.5])
        )
    )
    assert [s.loss for s in read_history(metrics)[0]] == [2.0, 1.0, 0.5]


def test_diagnose_table_and_bad_input(tmp_path):
    path = trainer_state([2.0, 0.0, 1.0], [1.0, NAN, 1.0], tmp_path / "trainer_state.json")
    result = CliRunner().invoke(main, ["diagnose", str(path)])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1].startswith("hidden_nan        steps 20 (1 logged)")
    bad = tmp_path / "other.json"
    bad.write_text("{}")
    result = CliRunner().invoke(main, ["diagnose", str(bad)])
    assert (
        result.exit_code == 2
        and f"Error: {bad}: not a trainer_state.json (no log_history list)\n" == result.stderr
    )


def test_watchdog_easy_batches_are_harmless_and_runs_are_collapse():
    w = Watchdog(candidates=16, zero_run=4)
    stream = [2.0, 0.0001, 1.5, 0.0, 0.0, 1.2] + [0.0] * 4
    events = [e for i, loss in enumerate(stream) for e in w.observe(Step(i, loss, grad_norm=0.5))]
    assert [(e.kind, e.steps) for e in events] == [("persistent_zero", [6, 7, 8, 9])]
    assert w.summary() == {"steps": 10, "easy_batches": 3, "easy_share": 0.3, "non_finite_steps": 0}


def test_watchdog_non_finite_alarm_after_repeats():
    w = Watchdog(candidates=8, nan_limit=3, nan_window=10)
    out = [
        w.observe(Step(i, loss, grad_norm=g))
        for i, (loss, g) in enumerate([(1.0, NAN), (1.0, 1.0), (NAN, 1.0), (1.0, 1.0), (math.inf, 1.0)])
    ]
    assert [[e.kind for e in o] for o in out] == [[], [], [], [], ["non_finite"]]


@pytest.mark.parametrize("spread_shrinking, fires", [(True, True), (None, True), (False, False)])
def test_watchdog_uniform_collapse_needs_the_spread_not_growing(spread_shrinking, fires):
    w = Watchdog(candidates=8, plateau_run=5)
    events = [
        e for i in range(6) for e in w.observe(Step(i, math.log(8) * 1.01, grad_norm=0.1), spread_shrinking)
    ]
    assert [e.kind for e in events] == (["uniform_collapse"] if fires else [])


def test_candidates_per_query():
    assert candidates_per_query(4, 8, True, world_size=2) == 64
    assert candidates_per_query(4, 8, False) == 8 and candidates_per_query(1, 1, True) == 1


def test_diagnose_function_orders_findings():
    steps = [Step(1, NAN), Step(2, 0.0, 0.0), Step(3, 2.0)]
    assert [e.kind for e in diagnose(steps)] == ["exact_zero", "non_finite"]


def metrics_jsonl(losses, path, grad_norm=1.0):
    path.write_text(
        "".join(
            json.dumps({"step": i, "loss": v, "grad_norm": grad_norm, "lr": 1e-5}) + "\n"
            for i, v in enumerate(losses, start=1)
        )
    )
    return path


def test_a_noisy_healthy_run_is_judged_on_windows_not_single_steps(tmp_path):
    """Defect 3: the first single step happened to be low and the last high, but the mean fell."""
    import random

    rng = random.Random(3)
    losses = [max(0.05, 0.34 - 0.1 * i / 150 + rng.gauss(0, 0.1)) for i in range(150)]
    losses[0], losses[-1] = (
        0.58,
        1.95,
    )  # what a 150-step lenprof run showed: 0.58 vs 1.95, means 0.311 vs 0.264
    first, last = sum(losses[:30]) / 30, sum(losses[-30:]) / 30
    assert last < first  # the oracle: the windowed means fell
    code, found = kinds(metrics_jsonl(losses, tmp_path / "metrics.jsonl"))
    assert (code, found) == (0, {"healthy": "1-150"})


def test_a_loss_that_rose_is_not_called_healthy(tmp_path):
    losses = [0.3] * 20 + [0.9] * 20
    code, found = kinds(metrics_jsonl(losses, tmp_path / "metrics.jsonl"))
    assert (code, found) == (1, {"diverging": "1-40"})


def test_a_collapsed_flagembedding_run_is_judged_from_its_own_files(tmp_path):
    """Defect 4: the loss flat at ln 64 of batch 8 x group 8, with no flags given: the batch size
    comes from trainer_state.json, the group size from the plateau it sits at."""
    losses = [math.log(64) * (1 + 0.004 * (-1) ** i) for i in range(12)]
    path = trainer_state(losses, [0.01] * 12, tmp_path / "trainer_state.json", logging_steps=1)
    state = json.loads(path.read_text())
    state["train_batch_size"] = 8
    path.write_text(json.dumps(state))
    result = CliRunner().invoke(main, ["diagnose", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1] == "uniform_collapse  steps 1-12 (12 logged)"
    assert (
        "setup: 64 candidates per query = batch size 8 x group size 8, inferred from the loss plateau"
        in result.stdout
    )
    state["log_history"] = [{**e, "loss": 2.0 - 0.1 * i} for i, e in enumerate(state["log_history"][:-1])]
    path.write_text(json.dumps(state))  # a falling loss sits at no ln(8 g): nothing is inferred
    result = CliRunner().invoke(main, ["diagnose", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0 and "healthy" in result.stdout and "setup:" not in result.stdout


def training_args_bin(folder, **kwargs):
    """What the Trainer (and FlagEmbedding) saves: torch.save(TrainingArguments)."""
    import torch
    from transformers import TrainingArguments

    torch.save(
        TrainingArguments(output_dir=str(folder), report_to="none", use_cpu=True, **kwargs),
        folder / "training_args.bin",
    )


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_hidden_nan_advice_names_the_runs_real_precision(tmp_path, precision):
    """Defect 7: an fp32 run's NaNs are not fp16 overflows. The precision is read from the
    training_args.bin beside the history, without running anything in it."""
    import torch

    path = trainer_state([2.0, 0.0, 1.0], [1.0, NAN, 1.0], tmp_path / "trainer_state.json")
    training_args_bin(tmp_path, per_device_train_batch_size=8)
    if precision == "fp16":  # TrainingArguments refuses fp16 on CPU: flip the saved field
        args = torch.load(tmp_path / "training_args.bin", weights_only=False)
        args.fp16 = True
        torch.save(args, tmp_path / "training_args.bin")
    result = CliRunner().invoke(main, ["diagnose", str(path), "--format", "json"])
    (finding,) = json.loads(result.stdout)["findings"]
    assert finding["kind"] == "hidden_nan" and result.exit_code == 1
    if precision == "fp32":
        assert "fp16" not in finding["advice"].replace("not an fp16 overflow", "")
        assert "in full precision (fp32)" in finding["advice"]
    else:
        assert "use bf16 instead of fp16" in finding["advice"]


def test_training_args_are_read_without_running_the_pickle(tmp_path):
    from lenprof.train.runinfo import read_training_args

    training_args_bin(tmp_path, per_device_train_batch_size=8)
    args = read_training_args(tmp_path / "training_args.bin")
    assert (args["per_device_train_batch_size"], args["fp16"], args["bf16"]) == (8, False, False)
    (tmp_path / "evil.bin").write_bytes(
        b"cos\nsystem\n(S'touch " + str(tmp_path / "ran").encode() + b"'\ntR."
    )
    assert read_training_args(tmp_path / "evil.bin") == {} and not (tmp_path / "ran").exists()


@pytest.mark.parametrize("precision, alarms", [("fp16", []), ("no", [3])])
def test_fp16_gradient_overflow_is_the_scalers_business_not_an_alarm(precision, alarms):
    """With fp16 the loss scaler starts high and halves on overflowing gradients: inf gradient
    norms with a finite loss are routine there. A NaN loss is not, in any precision."""
    from lenprof.train.guard import Guard
    from lenprof.train.snapshot import Snapshot

    guard = Guard(candidates=8, snapshot=Snapshot(), precision=precision, log=lambda m: None)
    fired = [s for s in range(1, 5) if guard.observe(s, 1.5, math.inf if s < 4 else 1.0, 1e-5)]
    assert fired == alarms
    assert [s for s in range(5, 8) if guard.observe(s, NAN, 1.0, 1e-5)] == (
        [7] if precision == "fp16" else [5, 6, 7]
    )


def test_advice_to_lower_the_learning_rate_says_by_how_much():
    # "lower the learning rate" without a number helps nobody (issue 22): every such advice says
    # halve it, and where embedding fine-tuning runs
    from lenprof.train.health import ADVICE, advice

    lowering = [k for k in ADVICE if "lower the learning rate" in ADVICE[k]]
    assert {"persistent_zero", "non_finite", "uniform_collapse", "hidden_nan", "diverging"} <= set(lowering)
    for kind in lowering:
        for precision in (None, "fp16", "bf16", "no"):
            text = advice(kind, precision)
            assert "halve it, e.g. 1e-5 -> 5e-6" in text and "1e-5 to 1e-6" in text, (kind, precision)


# --- the trend: healthy, stalled, diverging, too short (issue 22, point 4) ----------------------------


def table(path, *args):
    result = CliRunner().invoke(main, ["diagnose", str(path), *args], catch_exceptions=False)
    return result.exit_code, result.stdout.splitlines()


def test_a_loss_that_rose_from_0_2_to_1_0_is_diverging(tmp_path):
    """It was 'nothing to judge', exit 0: a rising loss is a divergence, the learning rate too high."""
    import random

    rng = random.Random(5)
    losses = [0.2 + 0.8 * i / 59 + rng.gauss(0, 0.02) for i in range(60)]
    path = metrics_jsonl(losses, tmp_path / "metrics.jsonl")
    assert kinds(path) == (1, {"diverging": "1-60"})
    code, lines = table(path)
    assert lines[1] == "diverging         steps 1-60 (60 logged)"
    assert lines[2].startswith(" " * 18 + "median loss 0.3") and "over the first third, 0.8" in lines[2]
    assert lines[3].startswith(" " * 18 + "the loss rises: the learning rate is too high")


def test_a_flat_loss_is_stalled_not_healthy(tmp_path):
    """Flat at 1.386 ± 0.002 for 600 steps was 'healthy — the loss falls' (the last fifth's mean
    was a hair under the first's). Flat is a stall; 1.386 is ln 4, not ln 16: no uniform collapse."""
    import random

    rng = random.Random(0)
    losses = [1.386 + rng.uniform(-0.002, 0.002) for _ in range(600)]
    path = metrics_jsonl(losses, tmp_path / "metrics.jsonl")
    assert kinds(path, "--candidates", "16") == (1, {"stalled": "1-600"})
    code, lines = table(path, "--candidates", "16")
    assert "1.386 over the last (noise ±0.001" in lines[2]
    assert lines[2].endswith(
        "; not at ln(16) = 2.773, where every candidate would score the same: "
        "the model tells them apart, but stopped learning"
    )
    assert lines[3].startswith(
        " " * 18 + "the loss does not fall: check that the learning rate is not too low"
    )


def test_a_stall_at_ln_candidates_says_it_sits_there(tmp_path):
    """Too noisy for uniform_collapse (under half the losses within 3% of ln 8), flat all the same."""
    import random

    rng = random.Random(1)
    losses = [math.log(8) + rng.gauss(0, 0.2) for _ in range(300)]
    path = metrics_jsonl(losses, tmp_path / "metrics.jsonl")
    assert kinds(path, "--candidates", "8") == (1, {"stalled": "1-300"})
    assert (
        "; it sits at ln(8) = 2.079, where every candidate scores the same"
        in table(path, "--candidates", "8")[1][2]
    )


README_RUN = [
    0.4118,
    0.0079,
    0.0061,
    3.0118,
    0.0504,
    0.172,
    0.0431,
    3.2506,
    1.8349,
    0.1104,
]  # its metrics.jsonl


def test_a_run_too_short_to_judge_says_how_short(tmp_path):
    """The README's 10-step `lenprof train` run got 'nothing to judge: ... a loss that never fell'."""
    path = metrics_jsonl(README_RUN, tmp_path / "metrics.jsonl")
    assert kinds(path) == (0, {"too_short": "1-10"})
    code, lines = table(path)
    assert lines[1:3] == [
        "too_short         steps 1-10 (10 logged)",
        " " * 18 + "10 logged losses; a trend needs at least 12",
    ]
    assert not any("nothing to judge" in line for line in lines)


def test_a_run_too_noisy_for_its_length_says_how_many_losses_it_needs(tmp_path):
    """The README run's scatter over 40 steps: neither a fall nor a stall can stand out of it."""
    import statistics

    losses = README_RUN * 4
    path = metrics_jsonl(losses, tmp_path / "metrics.jsonl")
    assert kinds(path) == (0, {"too_short": "1-40"})
    # the oracle: 3 thirds of w losses each, with 3 standard errors of a difference of medians
    # (1.2533 sigma sqrt(2 / w)) under a tenth of the first third's median
    diffs = [b - a for a, b in zip(losses[:-1], losses[1:], strict=True)]
    sigma = 1.4826 * statistics.median(abs(d - statistics.median(diffs)) for d in diffs) / math.sqrt(2)
    tenth = 0.1 * statistics.median(losses[:13])
    needed = 3 * math.ceil(2 * (3 * 1.2533 * sigma / tenth) ** 2)
    unit = 10 ** (len(str(needed)) - 2)  # said to two significant digits, rounded up
    assert needed > 1_000_000 and table(path)[1][2].endswith(
        f"a trend needs about {-(-needed // unit) * unit}"
    )


def test_a_zero_loss_verdict_still_wins_over_the_trend(tmp_path):
    """A rising loss with a NaN in disguise is a hidden_nan run, as before: the trend is judged only
    when nothing else is wrong."""
    losses = [0.2 + 0.8 * i / 59 for i in range(60)]
    grads = [1.0] * 60
    losses[30], grads[30] = 0.0, NAN
    path = trainer_state(losses, grads, tmp_path / "trainer_state.json", logging_steps=1)
    assert kinds(path) == (1, {"hidden_nan": "31"})


# --- advice with the run's own learning rate (issue 22, point 5) -----------------------------------


def test_advice_halves_the_runs_own_learning_rate_from_its_log(tmp_path):
    losses = [0.3] * 20 + [0.9] * 20
    rows = [
        {"step": i, "loss": v, "grad_norm": 1.0, "lr": 2e-5 * min(1, i / 4)} for i, v in enumerate(losses, 1)
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (finding,) = json.loads(CliRunner().invoke(main, ["diagnose", str(path), "--format", "json"]).stdout)[
        "findings"
    ]
    assert finding["kind"] == "diverging" and "halve it: 2e-5 -> 1e-5;" in finding["advice"]
    assert "e.g." not in finding["advice"]


def test_advice_takes_the_configured_rate_from_train_report_json(tmp_path):
    path = metrics_jsonl([0.3] * 20 + [0.9] * 20, tmp_path / "metrics.jsonl")  # logs lr 1e-5
    (tmp_path / "train_report.json").write_text(json.dumps({"config": {"learning_rate": 3e-5}}))
    (finding,) = json.loads(CliRunner().invoke(main, ["diagnose", str(path), "--format", "json"]).stdout)[
        "findings"
    ]
    assert "halve it: 3e-5 -> 1.5e-5;" in finding["advice"]


def test_advice_takes_the_rate_from_training_args_bin(tmp_path):
    path = trainer_state([2.0, 0.0, 1.0], [1.0, NAN, 1.0], tmp_path / "trainer_state.json")
    training_args_bin(tmp_path, learning_rate=4e-5)
    (finding,) = json.loads(CliRunner().invoke(main, ["diagnose", str(path), "--format", "json"]).stdout)[
        "findings"
    ]
    assert finding["kind"] == "hidden_nan" and "halve it: 4e-5 -> 2e-5;" in finding["advice"]


def test_advice_without_a_known_rate_keeps_the_generic_example(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        "".join(json.dumps({"step": i, "loss": 0.3 if i <= 20 else 0.9}) + "\n" for i in range(1, 41))
    )
    (finding,) = json.loads(CliRunner().invoke(main, ["diagnose", str(path), "--format", "json"]).stdout)[
        "findings"
    ]
    assert "halve it, e.g. 1e-5 -> 5e-6;" in finding["advice"]


def test_stalled_advice_names_the_runs_rate():
    from lenprof.train.health import advice

    assert "(this run's peaked at 1e-7; embedding models fine-tune at 1e-5 to 1e-6" in advice(
        "stalled", lr=1e-7
    )


def test_the_live_watchdog_halves_the_rate_the_run_used():
    w = Watchdog(candidates=8, zero_run=3)
    events = [e for s in range(1, 6) for e in w.observe(Step(s, 0.0, grad_norm=0.1, lr=2e-5 * min(1, s / 2)))]
    assert [e.kind for e in events] == ["persistent_zero"]
    assert "halve it: 2e-5 -> 1e-5;" in events[0].advice


def recorded_run(folder, report: bool = True):
    """A lenprof train run whose loss fell (a trend called healthy on its own) while its
    watchdog caught a uniform_collapse at steps 6, 11 and 25 and recovered from each: the
    issue 26 seed run, as its metrics.jsonl and train_report.json record it."""
    folder.mkdir()
    losses = [3.4 - 0.1 * i for i in range(30)]
    events = {6: ["uniform_collapse"], 11: ["uniform_collapse"], 25: ["uniform_collapse"]}
    (folder / "metrics.jsonl").write_text(
        "".join(
            json.dumps(
                {"step": i + 1, "loss": loss, "grad_norm": 1.0, "lr": 1e-2, "events": events.get(i + 1, [])}
            )
            + "\n"
            for i, loss in enumerate(losses)
        )
    )
    if report:
        recorded = [e for s in (6, 11, 25) for e in ({"step": s, "kind": "uniform_collapse", "advice": "..."},
                                                      {"step": s, "kind": "recovered", "restored_step": 1})]  # fmt: skip
        (folder / "train_report.json").write_text(json.dumps({
            "config": {"learning_rate": 1e-2}, "candidates_per_query": 64, "precision": "no",
            "events": recorded, "stopped": None, "weights": "trained",
        }))  # fmt: skip
    return folder


def test_diagnose_names_the_collapses_the_run_recorded_first_and_never_calls_it_healthy(tmp_path):
    """Issue 26: diagnose said "healthy", exit 0, on a run whose own files recorded three
    uniform_collapse events, because the loss fell after the recoveries."""
    run = recorded_run(tmp_path / "run")
    result = CliRunner().invoke(main, ["diagnose", str(run)], catch_exceptions=False)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[1] == "watchdog          steps 6, 11, 25 (3 recorded)"
    assert lines[2] == " " * 18 + (
        f"recorded in {run / 'train_report.json'}: uniform_collapse at steps 6, 11, 25; 3 recoveries "
        "(restored the snapshot, cut the learning rate); it saved: trained"
    )
    assert "halve it: 1e-2 -> 5e-3" in lines[3]
    assert "healthy" not in [line.split()[0] for line in lines[1:] if line and not line.startswith(" ")]
    # the events are read from metrics.jsonl alone too (a run killed before its report)
    assert kinds(recorded_run(tmp_path / "bare", report=False)) == (1, {"watchdog": "6, 11, 25"})
    # and the same losses without events are a healthy run: the trend rules stand for plain logs
    plain = tmp_path / "plain.jsonl"
    plain.write_text(
        "".join(json.dumps({"step": i + 1, "loss": 3.4 - 0.1 * i, "lr": 1e-2}) + "\n" for i in range(30))
    )
    assert kinds(plain) == (0, {"healthy": "1-30"})
