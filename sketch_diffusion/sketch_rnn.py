"""Google's pretrained Sketch-RNN decoders (sketch-rnn-js ``.gen.json``) in PyTorch, and a stand-in corpus.

The file is ``[info, dims, weights]``; each weight is base64 little-endian int16 with
``value = int16 * 10 / 32767``, in the order: output W ``(H, 123)``, output b ``(123,)``, LSTM
W_xh ``(5, 4H)``, W_hh ``(H, 4H)``, bias ``(4H,)``. The LSTM gates are ``i, j, f, o`` with a forget
bias of 1.0 added at run time. Outputs: 3 pen logits, then six blocks of 20 mixture components
(logits, mu_x, mu_y, log sigma_x, log sigma_y, raw rho). Offsets are in normalised units;
``info["scale_factor"]`` turns them into pixels.

    python -m sketch_diffusion.sketch_rnn sample --model rabbit.gen.json --num 12000 --seed 0 --out data/rabbit_sketchrnn.ndjson
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from pipeline.representation import raw_to_simplified, stroke3_to_strokes, stroke5_to_stroke3

from .data import to_ndjson_record
from .download import SPLIT_TEST_SIZE, SPLIT_TRAIN_SIZE
from .fileio import file_digest, write_json_atomic, write_ndjson_atomic

SAMPLING_ROUNDS_PER_BATCH = 10  # batches drawn per batch asked for before a model that seldom ends is given up on


class PretrainedSketchRNN:
    """A decoder-only (unconditional) Sketch-RNN loaded from a sketch-rnn-js ``.gen.json`` file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            info, dims, blobs = json.loads(self.path.read_text())
            if not isinstance(info, dict):
                raise TypeError(f"its info is a {type(info).__name__}, not an object")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path} is not a sketch-rnn-js model file ([info, dims, weights]): {exc}") from None
        if info.get("mode") != 2:
            raise ValueError(f"{path}: mode {info.get('mode')} is not supported (only 2, the unconditional decoder)")
        if len(dims) != 5 or len(blobs) != 5:
            raise ValueError(f"{path}: expected 5 weight tensors, found {len(blobs)}")
        tensors = []
        for shape, blob in zip(dims, blobs):
            try:
                values = np.frombuffer(base64.b64decode(blob), dtype="<i2").astype(np.float32) * (10.0 / 32767.0)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}: a weight of shape {shape} does not decode ({exc})") from None
            if values.size != int(np.prod(shape)):
                raise ValueError(f"{path}: a weight of shape {shape} holds {values.size} values")
            tensors.append(torch.from_numpy(values.reshape(shape)))
        self.w_out, self.b_out, self.w_xh, self.w_hh, self.bias = tensors
        self.hidden_size = self.w_hh.shape[0]
        if self.w_xh.shape != (5, 4 * self.hidden_size) or self.w_hh.shape[1] != 4 * self.hidden_size:
            raise ValueError(f"{path}: LSTM weights of shapes {list(self.w_xh.shape)} and {list(self.w_hh.shape)} do "
                             f"not fit a {self.hidden_size}-unit decoder")
        self.info = info
        self.name = info.get("name", self.path.stem)
        try:
            self.max_seq_len = int(info["max_seq_len"])
            self.scale_factor = float(info["scale_factor"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: its info lacks a numeric max_seq_len and scale_factor ({exc!r})") from None
        if self.max_seq_len < 2:
            raise ValueError(f"{path}: max_seq_len {self.max_seq_len} leaves no room for a sketch")

    def step(self, x: torch.Tensor, state):
        """One LSTM step: ``x (N, 5)`` -> mixture outputs ``(N, 3 + 6 * 20)`` and the new ``(h, c)``."""
        if state is None:
            zeros = torch.zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        h, c = state
        i, j, f, o = (x @ self.w_xh + h @ self.w_hh + self.bias).chunk(4, dim=1)
        c = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * torch.tanh(j)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h @ self.w_out + self.b_out, (h, c)

    def sample(self, num: int, temperature: float = 0.65, seed: int = 0, batch_size: int = 1000,
               progress: bool = True) -> list[list[np.ndarray]]:
        """``num`` sketches (absolute strokes, 0..255 canvas), deterministic for ``seed``."""
        return sample_sketches(self.step, num, self.max_seq_len, self.scale_factor, temperature, seed, batch_size,
                               progress, desc=f"sampling {self.name}")


def mixture_sample(y: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """Draw one stroke-5 row per output row ``y (N, 3 + 6M)``: 3 pen logits, then M-blocks of
    mixture logits, mu_x, mu_y, log sigma_x, log sigma_y, raw rho. Temperature as in sketch-rnn-js."""
    num = y.shape[0]
    tau = 0.5 + 0.5 * temperature
    logits, mu_x, mu_y, log_sx, log_sy, rho = y[:, 3:].chunk(6, dim=1)
    k = torch.multinomial(torch.softmax(logits / tau, dim=1), 1, generator=generator)
    pick = lambda t: t.gather(1, k).squeeze(1)  # noqa: E731
    sx = torch.exp(pick(log_sx)) * np.sqrt(temperature)
    sy = torch.exp(pick(log_sy)) * np.sqrt(temperature)
    r = torch.tanh(pick(rho))
    z = torch.randn(num, 2, generator=generator)
    row = torch.zeros(num, 5)
    row[:, 0] = pick(mu_x) + sx * z[:, 0]
    row[:, 1] = pick(mu_y) + sy * (r * z[:, 0] + torch.sqrt(1 - r * r) * z[:, 1])
    pen = torch.multinomial(torch.softmax(y[:, :3] / tau, dim=1), 1, generator=generator).squeeze(1)
    row[torch.arange(num), 2 + pen] = 1.0
    return row


@torch.no_grad()
def sample_stroke5(step, num: int, max_len: int, temperature: float = 0.65,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a decoder ``step(x, state) -> (y, state)`` autoregressively from the start token ``(0, 0, 1, 0, 0)``.

    Returns ``stroke5 (num, max_len, 5)`` in normalised units (rows after the end are end rows) and
    ``ended (num,)``: whether each sketch reached the end state. The decoder runs only on unfinished sketches;
    the mixture is still sampled for all ``num`` rows (finished ones from zero outputs, then discarded), so the
    random stream, and with it every sketch, is the same as when all rows run.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    x = torch.zeros(num, 5)
    x[:, 2] = 1.0
    out = torch.zeros(num, max_len, 5)
    out[:, :, 4] = 1.0
    done = torch.zeros(num, dtype=torch.bool)
    active, state = torch.arange(num), None
    for t in range(max_len):
        y, state = step(x[active], state)
        y_all = y.new_zeros(num, y.shape[1])
        y_all[active] = y
        row = mixture_sample(y_all, temperature, generator)
        row[done] = out[done, t]  # finished sketches keep end rows
        out[:, t] = row
        done |= row[:, 4] > 0.5
        if bool(done.all()):
            break
        x = row
        still = ~done[active]  # keep the state of the sketches that go on
        active, state = active[still], tuple(s[still] for s in state)
    return out, done


def stroke5_to_sketch(stroke5: np.ndarray, scale_factor: float) -> list[np.ndarray]:
    """One sampled stroke-5 sequence (normalised units) -> strokes in the official simplified form (0..255, RDP)."""
    strokes = stroke3_to_strokes(stroke5_to_stroke3(stroke5) * np.array([scale_factor, scale_factor, 1.0], np.float32))
    return raw_to_simplified(strokes) if strokes else []


def sample_sketches(step, num: int, max_len: int, scale_factor: float, temperature: float = 0.65, seed: int = 0,
                    batch_size: int = 1000, progress: bool = True, desc: str = "sampling") -> list[list[np.ndarray]]:
    """``num`` sketches from a decoder step function, deterministic for ``seed``.

    Samples that never reach the end state, or have no points, are discarded and drawn again.
    """
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(seed)
    sketches: list[list[np.ndarray]] = []
    with tqdm(total=num, desc=desc, disable=not progress) as bar:
        for _ in range(SAMPLING_ROUNDS_PER_BATCH * math.ceil(num / batch_size)):
            if len(sketches) >= num:
                break
            stroke5, ended = sample_stroke5(step, batch_size, max_len, temperature, generator)
            for row, ok in zip(stroke5.numpy(), ended.tolist()):
                sketch = stroke5_to_sketch(row, scale_factor) if ok else []
                if sketch and len(sketches) < num:
                    sketches.append(sketch)
                    bar.update(1)
    if len(sketches) < num:
        raise ValueError(f"{SAMPLING_ROUNDS_PER_BATCH} times the {num} samples asked for gave {len(sketches)} finished "
                         f"sketches: the model rarely ends a sketch within {max_len} points")
    return sketches


def write_standin_corpus(model: PretrainedSketchRNN, num: int, out: str | Path, seed: int = 0,
                         temperature: float = 0.65, num_test: int = SPLIT_TEST_SIZE) -> tuple[Path, Path]:
    """Write ``num`` samples in the official ndjson schema, each marked synthetic, plus a split file.

    Records carry ``countrycode "ZZ"`` and a ``source`` naming the model file (with its sha256) and the
    temperature. The split puts the last ``num_test`` lines in test and the rest in train (``num_test == num``
    makes a held-out set of test drawings only, e.g. a validation corpus with another seed).
    """
    if num < num_test or num_test < 0:
        raise ValueError(f"--num-test {num_test} must be between 0 and --num {num}")
    out = Path(out)
    sketches = model.sample(num, temperature=temperature, seed=seed)
    source = f"sketch-rnn:{model.path.name}:sha256={file_digest(model.path)[:16]}:temperature={temperature}:seed={seed}"
    records = (to_ndjson_record(s, word=model.name, key_id=f"synthetic-{seed}-{i}", timestamp="synthetic",
                                source=source) for i, s in enumerate(sketches))
    write_ndjson_atomic(out, records)
    split_path = out.with_name(out.name.split(".")[0] + ".split.json")
    write_json_atomic(split_path, {"train": list(range(num - num_test)), "test": list(range(num - num_test, num))},
                      indent=None)
    return out, split_path


def sample_baseline(folder: str | Path, num: int, out: str | Path, seed: int = 0, temperature: float = 0.65,
                    word: str = "sketch") -> Path:
    """Sample our trained Sketch-RNN baseline (a ``SketchRNNDecoder`` folder) to an ndjson file."""
    from .modeling_sketch_rnn import SketchRNNDecoder

    try:
        model = SketchRNNDecoder.from_pretrained(folder).eval()
        if any(parameter.is_meta for parameter in model.parameters()):  # weights of another model: none loaded
            raise ValueError("its weights are not a Sketch-RNN decoder's")
    except Exception as exc:  # another kind of folder (a diffusion model's, a checkpoint): name it
        raise ValueError(f"{folder} is not a train_sketch_rnn.py output folder ({type(exc).__name__}: {exc})") from None
    with torch.no_grad():
        sketches = sample_sketches(model.step, num, model.config.max_seq_len, model.config.scale_factor,
                                   temperature, seed, desc="sampling the baseline")
    source = f"sketch-rnn-baseline:{Path(folder).name}:temperature={temperature}:seed={seed}"
    write_ndjson_atomic(out, (to_ndjson_record(s, word=word, key_id=f"baseline-{seed}-{i}", timestamp="synthetic",
                                               source=source) for i, s in enumerate(sketches)))
    return Path(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sketch_diffusion.sketch_rnn", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sample", help="sample a .gen.json model (writes a corpus plus split file) or our trained "
                                      "baseline folder (writes sketches for evaluate.py --generated)")
    p.add_argument("--model", required=True, help="sketch-rnn-js .gen.json file, or a train_sketch_rnn.py output folder")
    p.add_argument("--num", type=int, default=SPLIT_TRAIN_SIZE + SPLIT_TEST_SIZE, help="drawings (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=0.65, help="sampling temperature (default: %(default)s)")
    p.add_argument("--num-test", type=int, default=SPLIT_TEST_SIZE, help=".gen.json only: the last N drawings form "
                   "the test split (default: %(default)s, the official test size)")
    p.add_argument("--word", default="sketch", help="baseline only: the 'word' field of the records")
    p.add_argument("--out", required=True, help="output .ndjson; for .gen.json the split is written beside it as "
                   "<name>.split.json")
    args = parser.parse_args(argv)
    if args.num < 1:
        p.error(f"--num must be at least 1, got {args.num}")
    if Path(args.out).is_dir():
        p.error(f"--out {args.out} is a folder; give the .ndjson file to write")
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        p.error(f"--temperature must be a finite number > 0, got {args.temperature}")
    try:
        if Path(args.model).is_dir():
            print(f"wrote {sample_baseline(args.model, args.num, args.out, args.seed, args.temperature, args.word)}")
            return 0
        out, split = write_standin_corpus(PretrainedSketchRNN(args.model), args.num, args.out, args.seed,
                                          args.temperature, args.num_test)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} and {split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
