#!/usr/bin/env bash
# Reproduce the shipped release: the stand-in corpus and its split, the three models, the Sketch-RNN baseline,
# the metrics behind the README's results tables, and the model cards (dry-run release staging).
# CPU times are for 2 cores. The recipe study's commands (docs/recipe_study.md) are at git tag recipe-study-2026-11.
# The shipped models were trained before commit a1594d5, whose train.py exports its sample and validation copies
# from a forked random state (so that a resumed run is bit-identical): this script's runs now draw other dropout
# masks from the first validation on, and give statistically equal, not bit-identical, weights. Likewise distill.py
# since it initialises its discriminator from --seed alone (the rabbit's shipped student was distilled before).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=../shared/data
FIRST25=$SHARED/quickdraw/samples/official_simplified_first25

# 1. The stand-in rabbit corpus: 12,000 drawings sampled from Google's pretrained Sketch-RNN rabbit (~80 s), with
#    its split beside it (data/rabbit_sketchrnn.split.json: 10,000 train / 2,000 test).
[ -f data/rabbit_sketchrnn.ndjson ] || python -m sketch_diffusion.sketch_rnn sample \
    --model $SHARED/sketchrnn_models/rabbit.gen.json --num 12000 --seed 0 --out data/rabbit_sketchrnn.ndjson
RABBIT=(--category rabbit --data data/rabbit_sketchrnn.ndjson --split data/rabbit_sketchrnn.split.json)

# 2. The shipped rabbit: train.py's default recipe (64 points, history attention, bfloat16 autocast where native) for
#    2,900 steps (52 min on the 2-core machine of 2026-12-07), with 500 of the 10,000 training drawings held out for
#    the validation loss; checkpoints kept for the FID-vs-time curve. It ran into outputs/rabbit with
#    --max-train-minutes 50 and was resumed for its last 109 steps (bit-identical to one uninterrupted run).
python train.py "${RABBIT[@]}" --output-dir outputs/rabbit --max-steps 2900 --validation-size 500 \
    --validation-interval 500 --checkpointing-steps 725 --checkpoints-total-limit 10 --sample-interval 0 \
    --logger none --resume-from-checkpoint latest
#    Its distilled 1-step sampler, the folder's default (bfloat16 autocast where native; 23 min of teacher paths, then
#    5,000 consistency steps and 2,000 adversarial steps), then the folder without its checkpoints.
python distill.py --model outputs/rabbit
rm -rf models/rabbit && mkdir -p models/rabbit
(cd outputs/rabbit && tar cf - --exclude=checkpoints .) | (cd models/rabbit && tar xf -)

# 3. cat and bus: the 25 real drawings reachable here, with stronger augmentation (a demonstration only), and the
#    recipe they were trained with before E24 (32 points, no history attention, the plain MLP denoiser, float32);
#    scored against those same drawings.
for c in cat bus; do
  python train.py --category $c --data $FIRST25/$c.ndjson.gz --points-per-stroke 32 --history-attention-layers 0 \
      --head-conv-blocks 0 --output-dir models/$c \
      --augment 1.0 --max-steps 800 --train-batch-size 32 --lr-warmup-steps 50 --checkpointing-steps 400 \
      --sample-interval 400 --resume-from-checkpoint latest --mixed-precision no --overwrite-output-dir
  # A quarter of the rabbit's consistency budget, and no adversarial phase: its discriminator would learn the ~220
  # real strokes of 25 drawings by heart.
  python distill.py --model models/$c --teacher-sketches 5000 --batch-size 1024 --max-steps 2000 --adversarial-steps 0
  python evaluate.py --model models/$c --category $c --data $FIRST25/$c.ndjson.gz --out models/$c/metrics.json
done

# 4. The Sketch-RNN baseline on the same drawings, for the same wall-clock budget (41.8 min: the budget of the
#    rabbit release it was first compared with; the shipped rabbit trained for 41.4), then 2,000 samples.
python train_sketch_rnn.py "${RABBIT[@]}" --output-dir outputs/sketchrnn_rabbit --max-steps 1000000 \
    --max-train-minutes 41.8
python -m sketch_diffusion.sketch_rnn sample --model outputs/sketchrnn_rabbit --num 2000 --seed 0 --word rabbit \
    --out outputs/sketchrnn_rabbit/samples.ndjson
#    The same baseline retrained for 40 minutes on the faster machine of 2026-12-01: 17,631 steps, retrained to that
#    step count and kept in benchmarks/baselines/rabbit_sketchrnn_40min (the speed benchmark's baseline).
python train_sketch_rnn.py "${RABBIT[@]}" --output-dir outputs/sketchrnn_40 --max-steps 17631
python -m sketch_diffusion.sketch_rnn sample --model benchmarks/baselines/rabbit_sketchrnn_40min --num 2000 --seed 0 \
    --word rabbit --out outputs/sketchrnn_40/samples.ndjson

# 5. Evaluation on the test split: ours with the reference floor, the baseline, and FID against training time.
python evaluate.py --model models/rabbit "${RABBIT[@]}" --reference-floor --out models/rabbit/metrics.json
python evaluate.py --generated outputs/sketchrnn_rabbit/samples.ndjson "${RABBIT[@]}" \
    --out results/rabbit_sketchrnn_baseline_metrics.json
python evaluate.py --model models/rabbit --scheduler dpm "${RABBIT[@]}" --out results/rabbit_full_sampler_metrics.json
python evaluate.py --generated outputs/sketchrnn_40/samples.ndjson "${RABBIT[@]}" \
    --out results/rabbit_sketchrnn_40min_kept_metrics.json
python benchmarks/fid_vs_training_time.py --run outputs/rabbit --checkpoints outputs/rabbit/checkpoints \
    --data data/rabbit_sketchrnn.ndjson --split data/rabbit_sketchrnn.split.json --num-samples 500 \
    --steps 725 1450 2175 2900 --out results/rabbit_fid_vs_time.json

# 6. The README's benchmarks (on an otherwise idle machine).
python benchmarks/bench_side_by_side.py --diffusion models/rabbit --baseline benchmarks/baselines/rabbit_sketchrnn_40min \
    | tee results/bench_side_by_side.txt
python benchmarks/bench_training.py --loss-curve-steps 500 --data data/rabbit_sketchrnn.ndjson \
    --split data/rabbit_sketchrnn.split.json | tee results/bench_training.txt
python benchmarks/bench_full_size.py | tee results/bench_full_size.txt

# 7. Model cards and sample GIFs (dry-run release staging; add --push to upload).
for c in cat bus rabbit; do
  python -m sketch_diffusion.release --model models/$c --repo-id "${HF_USER:-you}/quickdraw-$c-stroke-diffusion"
done
