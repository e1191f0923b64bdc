#!/usr/bin/env bash
# Reproduce the shipped models, their metrics and cards, the recipe study and the baseline comparison.
# Every number in the README's results section and in docs/recipe_study.md comes from one of these commands.
# CPU times are for 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=../shared/data
GEN=$SHARED/sketchrnn_models/rabbit.gen.json

# 1. The stand-in rabbit corpus (12,000 Sketch-RNN rabbits, 10,000 train / 2,000 test, ~100 s) and a separate
#    validation corpus (2,000 more, seed 1) on which the recipe and the sampler were chosen, so that the test
#    split is used only for the final numbers.
[ -f data/rabbit_sketchrnn.ndjson ] || python -m pipeline.sketch_rnn sample --model $GEN --num 12000 --seed 0 \
    --out data/rabbit_sketchrnn.ndjson
[ -f data/rabbit_sketchrnn_val.ndjson ] || python -m pipeline.sketch_rnn sample --model $GEN --num 2000 \
    --num-test 2000 --seed 1 --out data/rabbit_sketchrnn_val.ndjson
RABBIT=(--category rabbit --data data/rabbit_sketchrnn.ndjson --split data/rabbit_sketchrnn.split.json)
VAL=(--data data/rabbit_sketchrnn_val.ndjson --split data/rabbit_sketchrnn_val.split.json --num-samples 500)
# The recipe before 2026-11-23 (a plain MLP denoiser): the runs of the recipe study (E1 to E13, except E6) and the
# rabbit released on 2026-11-22, on which the study's sampler settings were measured. Its exact weights are in the
# git history; steps 3 and 4 use them.
MLP=("${RABBIT[@]}" --head-conv-blocks 0)
PREV=outputs/release_2026-11-22/models/rabbit
[ -d $PREV ] || { mkdir -p outputs/release_2026-11-22 \
                  && git archive 9610649 models/rabbit | tar -x -C outputs/release_2026-11-22; }

# 2. The shipped rabbit: the default recipe (v-prediction, dropout, augmentation, context dropout, two convolution
#    blocks along the points after the denoiser MLP) for 2,000 steps (41 min of 2-core CPU), with 500 of the 10,000
#    training drawings held out for the validation loss. This is the recipe study's E6, trained as outputs/e6 and
#    copied to models/rabbit; the 2026-11-22 release ($PREV) is the same command with --head-conv-blocks 0.
python train.py "${RABBIT[@]}" --output-dir models/rabbit --max-steps 2000 --validation-size 500 \
    --checkpoints-total-limit 10 --sample-interval 1000 --resume-from-checkpoint latest

# 3. Recipe study (docs/recipe_study.md), scored on the validation corpus, not the test split:
#    E1 is the same run with noise prediction; the sampler study varies guidance, scheduler and steps. In this
#    step, as in that file's steps 1 to 17, "the shipped model" and "the shipped recipe" are the 2026-11-22
#    release ($PREV) and its recipe.
if [ "${RECIPE_STUDY:-1}" = 1 ]; then
  python train.py "${MLP[@]}" --output-dir outputs/e1 --max-steps 2000 --prediction-type epsilon \
      --validation-size 500 --checkpoints-total-limit 10 --sample-interval 1000 --resume-from-checkpoint latest
  python benchmarks/sampler_study.py --model outputs/e1 "${VAL[@]}" --setting guidance_scale=1.0 \
      --setting first_timestep=980 | tee results/rabbit_study_e1.txt
  python benchmarks/sampler_study.py --model $PREV "${VAL[@]}" --setting guidance_scale=1.0 --setting guidance_scale=1.5 \
      --setting guidance_scale=2.0 --setting num_inference_steps=20 --setting scheduler=ddim,num_inference_steps=30 \
      --setting simplify_history=false | tee results/rabbit_study_e2.txt
  python benchmarks/sampler_study.py --model $PREV "${VAL[@]}" --setting "" --setting temperature=0.9 \
      --setting temperature=0.8 --setting temperature=1.1 --setting temperature=1.2 --setting temperature=1.35 \
      | tee results/rabbit_study_temperature.txt
  # E3: the shipped recipe plus history noise (exposure bias); not adopted
  python train.py "${MLP[@]}" --output-dir outputs/e3 --max-steps 2000 --validation-size 500 --history-noise 0.04 \
      --checkpoints-total-limit 10 --sample-interval 1000 --resume-from-checkpoint latest
  python benchmarks/sampler_study.py --model outputs/e3 "${VAL[@]}" --setting "" | tee results/rabbit_study_e3.txt
  # the representation floor: real train drawings through the model's stroke representation, no model
  for v in "p32 --points-per-stroke 32" "p64 --points-per-stroke 64" "p32_keep --resampling vertices" \
           "p32_keep_eps1 --resampling vertices --epsilon 1" "p32_padded_eps1 --resampling padded_vertices --epsilon 1" \
           "p32_padded_eps05 --resampling padded_vertices --epsilon 0.5" "p32_pieces128 --max-stroke-length 128" \
           "p16 --points-per-stroke 16" "p16_pieces128 --points-per-stroke 16 --max-stroke-length 128" \
           "p16_pieces64 --points-per-stroke 16 --max-stroke-length 64" "p32_corners_restored --restore-corners" \
           "p32_long128 --only-longer-than 128"; do
    set -- $v
    name=$1; shift
    python benchmarks/representation_floor.py --data data/rabbit_sketchrnn.ndjson \
        --split data/rabbit_sketchrnn.split.json "$@" --out outputs/roundtrip_$name.ndjson
    python evaluate.py --generated outputs/roundtrip_$name.ndjson "${RABBIT[@]}" --out outputs/roundtrip_$name.json
  done
  # E4: the shipped recipe with vertex-keeping resampling; sampled with the official and two finer RDP tolerances
  python train.py "${MLP[@]}" --output-dir outputs/e4 --max-steps 2000 --validation-size 500 --resampling vertices \
      --checkpoints-total-limit 10 --sample-interval 1000 --resume-from-checkpoint latest
  python benchmarks/sampler_study.py --model outputs/e4 "${VAL[@]}" --setting "" --setting simplify_epsilon=1.0 \
      --setting simplify_epsilon=1.5 | tee results/rabbit_study_e4.txt
  python benchmarks/sampler_study.py --model outputs/e4 "${VAL[@]}" \
      --setting simplify_epsilon=1.5,num_inference_steps=30 --setting simplify_epsilon=1.0,num_inference_steps=50 \
      --setting num_inference_steps=30 --setting simplify_epsilon=1.5,num_inference_steps=100 \
      --setting simplify_epsilon=1.0,num_inference_steps=200 | grep -v "^model" >> results/rabbit_study_e4.txt
  # E5: the shipped recipe with 64 points per stroke (representation floor 8.97 instead of 11.97)
  python train.py "${MLP[@]}" --output-dir outputs/e5 --max-steps 2000 --validation-size 500 --points-per-stroke 64 \
      --checkpoints-total-limit 10 --sample-interval 1000 --resume-from-checkpoint latest
  python benchmarks/sampler_study.py --model outputs/e5 "${VAL[@]}" --setting "" --setting simplify_epsilon=1.5 \
      | tee results/rabbit_study_e5.txt
  # E6: the 2026-11-22 recipe with two convolution blocks along the points after the denoiser MLP, trained by step 2
  #   (as outputs/e6, since copied to models/rabbit)
  python benchmarks/sampler_study.py --model models/rabbit "${VAL[@]}" --setting "" --setting simplify_epsilon=1.5 \
      | tee results/rabbit_study_e6.txt
  # E7: the shipped recipe with padded-vertex strokes (the corners, then copies of the last) and a 1 px tolerance
  python train.py "${MLP[@]}" --output-dir outputs/e7 --max-steps 2000 --validation-size 500 \
      --resampling padded_vertices --simplify-epsilon 1 --checkpoints-total-limit 10 --sample-interval 1000 \
      --resume-from-checkpoint latest
  python benchmarks/sampler_study.py --model outputs/e7 "${VAL[@]}" --setting "" --setting simplify_epsilon=2.0 \
      --setting simplify_epsilon=0.5 --setting num_inference_steps=30 | tee results/rabbit_study_e7.txt
  # E8: the shipped recipe with strokes longer than 128 px cut into pieces, each one model stroke; two noise draws
  # per stroke instead of four, so that a step costs about what the shipped recipe's does with ~1.8 times the strokes
  python train.py "${MLP[@]}" --output-dir outputs/e8 --max-steps 2000 --validation-size 500 \
      --max-stroke-length 128 --noise-draws 2 --checkpoints-total-limit 10 --sample-interval 1000 \
      --resume-from-checkpoint latest
  python benchmarks/sampler_study.py --model outputs/e8 "${VAL[@]}" --setting "" | tee results/rabbit_study_e8.txt
  # E9: E8 with linked pieces: the model predicts whether a stroke continues the previous one and then starts it
  # exactly at that one's end
  python train.py "${MLP[@]}" --output-dir outputs/e9 --max-steps 2000 --validation-size 500 \
      --max-stroke-length 128 --link-pieces --noise-draws 2 --checkpoints-total-limit 10 --sample-interval 1000 \
      --resume-from-checkpoint latest
  python benchmarks/sampler_study.py --model outputs/e9 "${VAL[@]}" --setting "" | tee results/rabbit_study_e9.txt
  # the shipped model under other timestep schedules of its sampler (karras sigmas are left out: they fail on this
  # cosine schedule, see the results file)
  python benchmarks/sampler_study.py --model $PREV "${VAL[@]}" --setting "" \
      --setting scheduler.use_lu_lambdas=true --setting scheduler.algorithm_type=sde-dpmsolver++ \
      --setting scheduler.algorithm_type=sde-dpmsolver++,num_inference_steps=20 --setting scheduler.solver_order=3 \
      --setting scheduler.final_sigmas_type=sigma_min --setting timestep_power=1.5 --setting timestep_power=2 \
      --setting timestep_power=0.7 | tee results/rabbit_study_schedules.txt
  # E11: E4 with training timesteps T * u ** 2 (more training at low noise, for strokes clean to the pixel)
  python train.py "${MLP[@]}" --output-dir outputs/e11 --max-steps 2000 --validation-size 500 --resampling vertices \
      --timestep-power 2 --checkpoints-total-limit 10 --sample-interval 1000 --resume-from-checkpoint latest
  python benchmarks/sampler_study.py --model outputs/e11 "${VAL[@]}" --setting "" --setting simplify_epsilon=1.5 \
      --setting simplify_epsilon=1.0 | tee results/rabbit_study_e11.txt
  # E12: E9 with 16 points per piece
  python train.py "${MLP[@]}" --output-dir outputs/e12 --max-steps 2000 --validation-size 500 --points-per-stroke 16 \
      --max-stroke-length 128 --link-pieces --noise-draws 2 --checkpoints-total-limit 10 --sample-interval 1000 \
      --resume-from-checkpoint latest
  python benchmarks/sampler_study.py --model outputs/e12 "${VAL[@]}" --setting "" | tee results/rabbit_study_e12.txt
  # E13: E12 with pieces of at most 64 px (more pieces per sketch, hence --max-strokes 48)
  python train.py "${MLP[@]}" --output-dir outputs/e13 --max-steps 2000 --validation-size 500 --points-per-stroke 16 \
      --max-stroke-length 64 --link-pieces --noise-draws 2 --max-strokes 48 --checkpoints-total-limit 10 \
      --sample-interval 1000 --resume-from-checkpoint latest
  python benchmarks/sampler_study.py --model outputs/e13 "${VAL[@]}" --setting "" | tee results/rabbit_study_e13.txt
  # E12 and E13 with seeds 1 and 2 (seed 0 is in their own files): is their difference more than the seed's?
  for run in e12 e13; do for seed in 1 2; do
    python benchmarks/sampler_study.py --model outputs/$run "${VAL[@]}" --seed $seed --setting ""
  done; done | tee results/rabbit_study_e12_e13_seeds.txt
  # the 2026-11-22 release, E4 and E6 with 2,000 generated sketches, the test protocol's size (seed 0; seed 1 for two
  # of them; the results file names them models/rabbit, outputs/e4 and outputs/e6, as they were then)
  { for model in $PREV outputs/e4 models/rabbit; do
      python benchmarks/sampler_study.py --model $model "${VAL[@]}" --num-samples 2000 --setting ""
    done
    for model in $PREV models/rabbit; do
      python benchmarks/sampler_study.py --model $model "${VAL[@]}" --num-samples 2000 --seed 1 --setting ""
    done; } | tee results/rabbit_study_val2000.txt
  # smoothing along the points (the pipeline's smoothing_passes): the representation floor with it, and E5 (64
  # points) and E6 (32 points with the convolutions) sampled with it; their folders take today's pipeline code first
  for v in "p32_smooth1 --smoothing-passes 1" "p64_smooth1 --points-per-stroke 64 --smoothing-passes 1"; do
    set -- $v; name=$1; shift
    python benchmarks/representation_floor.py --data data/rabbit_sketchrnn.ndjson \
        --split data/rabbit_sketchrnn.split.json "$@" --out outputs/roundtrip_$name.ndjson
    python evaluate.py --generated outputs/roundtrip_$name.ndjson "${RABBIT[@]}" --out outputs/roundtrip_$name.json
  done
  for run in e5 e6; do python -m pipeline.release --model outputs/$run --refresh-code; done
  { python benchmarks/sampler_study.py --model outputs/e5 "${VAL[@]}" --setting "" --setting smoothing_passes=1 \
        --setting smoothing_passes=2
    python benchmarks/sampler_study.py --model outputs/e6 "${VAL[@]}" --setting "" --setting smoothing_passes=1
  } | tee results/rabbit_study_smoothing.txt
  # E14: 64 points per stroke with the convolution blocks (E5 with today's default denoiser); 500 and 2,000 samples
  python train.py "${RABBIT[@]}" --output-dir outputs/e14 --max-steps 2000 --validation-size 500 --points-per-stroke 64 \
      --checkpoints-total-limit 10 --sample-interval 1000 --resume-from-checkpoint latest
  { python benchmarks/sampler_study.py --model outputs/e14 "${VAL[@]}" --setting "" --setting smoothing_passes=1 \
        --setting smoothing_passes=2
    python benchmarks/sampler_study.py --model outputs/e14 "${VAL[@]}" --num-samples 2000 --setting "" \
        --setting smoothing_passes=1
    python benchmarks/sampler_study.py --model outputs/e14 "${VAL[@]}" --num-samples 2000 --seed 1 \
        --setting smoothing_passes=1
  } | tee results/rabbit_study_e14.txt
  # teacher forcing with partial noise: the floor's train drawings, each stroke noised to t and denoised by the model
  # given the real strokes before it (step 21); E6 is the shipped model
  for v in "e6_t99 models/rabbit 99" "e6_t199 models/rabbit 199" "e14s0_t99 outputs/e14 99 --smoothing-passes 0" \
      "e14s1_t99 outputs/e14 99 --smoothing-passes 1" "e14s1_t199 outputs/e14 199 --smoothing-passes 1" \
      "e14s1_t99_n100 outputs/e14 99 --smoothing-passes 1 --num-inference-steps 100"; do
    set -- $v; name=$1; model=$2; start=$3; shift 3
    python benchmarks/teacher_forced.py --model $model --data data/rabbit_sketchrnn.ndjson \
        --split data/rabbit_sketchrnn.split.json --start-timestep $start "$@" --out outputs/tf_$name.ndjson
    python evaluate.py --generated outputs/tf_$name.ndjson "${RABBIT[@]}" --out outputs/tf_$name.json
  done  # results/rabbit_teacher_forced.txt collects the two printed lines of each
  # the same finer low-noise steps in E14's own sketches (step 21)
  { python benchmarks/sampler_study.py --model outputs/e14 "${VAL[@]}" --setting smoothing_passes=1 \
        --setting smoothing_passes=1,timestep_power=2 --setting smoothing_passes=1,timestep_power=1.5 \
        --setting smoothing_passes=1,timestep_power=2,num_inference_steps=20 --setting timestep_power=2
  } | tee results/rabbit_study_lownoise.txt
  # more solver steps over the whole range in E14's own sketches (step 22): 500, then 2,000 samples
  { python benchmarks/sampler_study.py --model outputs/e14 "${VAL[@]}" --setting smoothing_passes=1 \
        --setting smoothing_passes=1,num_inference_steps=50 \
        --setting smoothing_passes=1,scheduler=ddpm,num_inference_steps=100 \
        --setting smoothing_passes=1,scheduler.algorithm_type=sde-dpmsolver++,num_inference_steps=50
    python benchmarks/sampler_study.py --model outputs/e14 "${VAL[@]}" --num-samples 2000 \
        --setting smoothing_passes=1,num_inference_steps=20 --setting smoothing_passes=1,num_inference_steps=50
  } | tee results/rabbit_study_e14_steps.txt
  # the shipped model with other output tolerances than the official 2 px
  python benchmarks/sampler_study.py --model $PREV "${VAL[@]}" --setting simplify_epsilon=1.5 \
      --setting simplify_epsilon=2.5 --setting simplify_epsilon=3.0 | tee results/rabbit_study_tolerance.txt
  # how much a 500-sample validation FID moves with the seed alone (the shipped model; seed 0 is in the E2 file)
  for seed in 1 2; do
    python benchmarks/sampler_study.py --model $PREV "${VAL[@]}" --seed $seed --setting ""
  done | tee results/rabbit_sampler_seed_spread.txt
  # the previous release's rabbit (noise prediction, no regularisation, 6,500 steps): train vs test loss
  mkdir -p outputs/previous_release && git archive ee5adf5 models/rabbit | tar -x -C outputs/previous_release
  python benchmarks/generalization_gap.py --model outputs/previous_release/models/rabbit \
      --data data/rabbit_sketchrnn.ndjson --split data/rabbit_sketchrnn.split.json \
      | tee results/rabbit_generalization_gap_previous_release.txt
fi

# 4. The Sketch-RNN baseline: same drawings, the wall-clock budget of the 2026-11-22 rabbit's training (41.8 min),
#    0.4 min more than the shipped rabbit's.
MINUTES=$(python -c "import json; print(round(json.load(open('$PREV/provenance.json'))['wall_time_seconds'] / 60, 1))")
python train_sketch_rnn.py "${RABBIT[@]}" --output-dir outputs/sketchrnn_rabbit --max-steps 1000000 \
    --max-train-minutes "$MINUTES"
python -m pipeline.sketch_rnn sample --model outputs/sketchrnn_rabbit --num 2000 --seed 0 --word rabbit \
    --out outputs/sketchrnn_rabbit/samples.ndjson

# 5. Evaluation on the test split: ours (with the reference floor), the baseline, the FID-vs-time curve.
python evaluate.py --model models/rabbit "${RABBIT[@]}" --reference-floor --out models/rabbit/metrics.json
python evaluate.py --generated outputs/sketchrnn_rabbit/samples.ndjson "${RABBIT[@]}" \
    --out results/rabbit_sketchrnn_baseline_metrics.json
# generation seed 1, the shipped model and the 2026-11-22 release (README, below the results table)
python evaluate.py --model models/rabbit "${RABBIT[@]}" --seed 1 --out outputs/test_seed1_shipped.json
python evaluate.py --model $PREV "${RABBIT[@]}" --seed 1 --out outputs/test_seed1_release_2026-11-22.json
python benchmarks/fid_vs_training_time.py --run models/rabbit --checkpoints models/rabbit/checkpoints \
    --data data/rabbit_sketchrnn.ndjson --split data/rabbit_sketchrnn.split.json --num-samples 500 \
    --steps 500 1000 1500 2000 --out results/rabbit_fid_vs_time.json
python benchmarks/generalization_gap.py --model models/rabbit --data data/rabbit_sketchrnn.ndjson \
    --split data/rabbit_sketchrnn.split.json | tee results/rabbit_generalization_gap.txt

# 6. cat and bus: the 25 real drawings reachable here, with stronger augmentation (a demonstration only); trained
#    before the convolution blocks became the default.
for c in cat bus; do
  python train.py --category $c --data $SHARED/quickdraw/samples/official_simplified_first25/$c.ndjson.gz \
      --head-conv-blocks 0 --output-dir models/$c --augment 1.0 --max-steps 800 --train-batch-size 32 \
      --lr-warmup-steps 50 --checkpointing-steps 400 --sample-interval 400 --resume-from-checkpoint latest
  python evaluate.py --model models/$c --category $c \
      --data $SHARED/quickdraw/samples/official_simplified_first25/$c.ndjson.gz --out models/$c/metrics.json
done

# 7. Model cards and sample GIFs (dry-run release staging).
for c in cat bus rabbit; do
  python -m pipeline.release --model models/$c --repo-id "${HF_USER:-you}/quickdraw-$c-stroke-diffusion"
done
