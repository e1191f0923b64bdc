"""Sampling 2,000 sketches: Google's pretrained Sketch-RNN rabbit, our Sketch-RNN baseline, our diffusion model.

    python benchmarks/bench_side_by_side.py --baseline outputs/sketchrnn_rabbit --diffusion models/rabbit

Without ``--baseline`` (its weights are not shipped) row (b) is left out: (a) then calibrates the machine.
"""

import argparse
import time

import torch
from common import SHARED, machine

from evaluate import default_inference_steps, sample_in_batches
from pipeline.sketch_rnn import PretrainedSketchRNN, sample_sketches


def timed(label, fn, num):
    start = time.perf_counter()
    sketches = fn()
    seconds = time.perf_counter() - start
    strokes = sum(len(s) for s in sketches) / len(sketches)
    print(f"{label:42s} {seconds:7.1f} s  {num / seconds:8.1f} sketches/s  ({strokes:.1f} strokes/sketch)")
    return num / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pretrained", default=str(SHARED / "data" / "sketchrnn_models" / "rabbit.gen.json"))
    parser.add_argument("--baseline", default=None, help="train_sketch_rnn.py output folder (optional)")
    parser.add_argument("--diffusion", required=True, help="pipeline folder")
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps per stroke (default: the pipeline's)")
    args = parser.parse_args()
    from diffusers import DiffusionPipeline

    from pipeline.modeling_sketch_rnn import SketchRNNDecoder

    google = PretrainedSketchRNN(args.pretrained)
    baseline = SketchRNNDecoder.from_pretrained(args.baseline).eval() if args.baseline else None
    pipe = DiffusionPipeline.from_pretrained(args.diffusion, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)

    steps = args.steps or default_inference_steps(pipe)

    def diffusion():
        return sample_in_batches(pipe, args.num, 500, torch.Generator().manual_seed(0), num_inference_steps=steps)

    with torch.no_grad():
        rates = {"google": timed("(a) Google's pretrained Sketch-RNN (512 LSTM)",
                                 lambda: google.sample(args.num, progress=False), args.num)}
        if baseline is not None:
            rates["baseline"] = timed(f"(b) our Sketch-RNN baseline ({baseline.config.hidden_size} LSTM)",
                                      lambda: sample_sketches(baseline.step, args.num, baseline.config.max_seq_len,
                                                              baseline.config.scale_factor, progress=False), args.num)
        rates["diffusion"] = timed(f"(c) our diffusion pipeline ({steps} {type(pipe.scheduler).__name__} steps)",
                                   diffusion, args.num)
    print("   ".join(f"diffusion / {name}: {rates['diffusion'] / rate:.2f}x"
                     for name, rate in rates.items() if name != "diffusion"))
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
