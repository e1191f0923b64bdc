#!/usr/bin/env bash
# Reproduce the shipped models, their metrics and cards, and the baseline comparison, on this machine.
# Every number in the README's results section comes from one of these commands. CPU times are for 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=../shared/data
CACHE=${CACHE:-$HOME/.cache/sketch_diffusion}

# 1. The stand-in rabbit corpus (78 s): 12,000 Sketch-RNN rabbits, 10,000 train / 2,000 test.
[ -f data/rabbit_sketchrnn.ndjson ] || python -m pipeline.sketch_rnn sample \
    --model $SHARED/sketchrnn_models/rabbit.gen.json --num 12000 --seed 0 --out data/rabbit_sketchrnn.ndjson
RABBIT=(--category rabbit --data data/rabbit_sketchrnn.ndjson --split data/rabbit_sketchrnn.split.json)

# 2. The rabbit diffusion model, trained in two segments (the shipped run): 3,000 steps of batch 64 with a
#    cosine schedule ending at step 3,000 (54 min), then resumed with the schedule stretched to 7,000 steps
#    (a warm restart); the shipped weights are checkpoint-6500 (108 min of cumulative training time; the run
#    was stopped there by hand). checkpoint-1000 (24.2 min) is the equal-budget model of step 4.
python train.py "${RABBIT[@]}" --output-dir models/rabbit --max-steps 3000 --checkpointing-steps 250 \
    --checkpoints-total-limit 20 --sample-interval 500 --resume-from-checkpoint latest
python train.py "${RABBIT[@]}" --output-dir outputs/rabbit_ckpt1000 --export-only \
    --resume-from-checkpoint models/rabbit/checkpoints/checkpoint-1000
python train.py "${RABBIT[@]}" --output-dir models/rabbit --max-steps 7000 --max-train-minutes 112 \
    --checkpointing-steps 500 --checkpoints-total-limit 20 --sample-interval 1000 --resume-from-checkpoint latest
python train.py "${RABBIT[@]}" --output-dir models/rabbit --max-steps 7000 --max-train-minutes 112 \
    --checkpointing-steps 500 --checkpoints-total-limit 20 --sample-interval 1000 --export-only \
    --resume-from-checkpoint models/rabbit/checkpoints/checkpoint-6500

# 3. The Sketch-RNN baseline, same data, wall-clock budget of our checkpoint-1000 (24.2 min, see README).
python train_sketch_rnn.py "${RABBIT[@]}" --output-dir outputs/sketchrnn_rabbit --max-train-minutes "${BASELINE_MINUTES:-24.2}"
python -m pipeline.sketch_rnn sample --model outputs/sketchrnn_rabbit --num 2000 --seed 0 --word rabbit \
    --out outputs/sketchrnn_rabbit/samples.ndjson

# 4. Evaluation: ours (with the reference floor) and the baseline, same protocol.
python evaluate.py --model models/rabbit "${RABBIT[@]}" --reference-floor --out models/rabbit/metrics.json
python evaluate.py --generated outputs/sketchrnn_rabbit/samples.ndjson "${RABBIT[@]}" \
    --out results/rabbit_sketchrnn_baseline_metrics.json
python evaluate.py --model outputs/rabbit_ckpt1000 "${RABBIT[@]}" --out results/rabbit_diffusion_equal_budget_metrics.json
python benchmarks/fid_vs_training_time.py --run models/rabbit --checkpoints models/rabbit/checkpoints \
    --data data/rabbit_sketchrnn.ndjson --split data/rabbit_sketchrnn.split.json --num-samples 500 \
    --steps 3000 4500 6500 --out results/rabbit_fid_vs_time.json
python evaluate.py --model outputs/rabbit_ckpt1000 "${RABBIT[@]}" --num-samples 500 --out results/rabbit_ckpt1000_500_metrics.json

# 5. cat and bus: the 25 real drawings reachable here, with augmentation (a demonstration only).
for c in cat bus; do
  python train.py --category $c --data $SHARED/quickdraw/samples/official_simplified_first25/$c.ndjson.gz \
      --output-dir models/$c --augment 1.0 --max-steps 800 --train-batch-size 32 --lr-warmup-steps 50 \
      --checkpointing-steps 400 --sample-interval 400 --resume-from-checkpoint latest
  python evaluate.py --model models/$c --category $c \
      --data $SHARED/quickdraw/samples/official_simplified_first25/$c.ndjson.gz --out models/$c/metrics.json
done

# 6. Model cards and sample GIFs (dry-run release staging).
for c in cat bus rabbit; do
  python -m pipeline.release --model models/$c --repo-id "${HF_USER:-you}/quickdraw-$c-stroke-diffusion"
done
