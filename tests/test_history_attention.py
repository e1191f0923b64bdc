"""The denoiser's cross-attention to the earlier strokes' points: what it sees, in training and in sampling."""
import pytest
import torch

from conftest import TINY_MODEL, make_tiny_pipeline, sketches_equal
from pipeline import StrokeDiffusionModel
from sketch_diffusion.training import DiffusionObjective, build_schedulers

ATTENDING = dict(TINY_MODEL, head_num_blocks=2, history_attention_layers=2)


def attending_model() -> StrokeDiffusionModel:
    torch.manual_seed(0)
    model = StrokeDiffusionModel(**ATTENDING)
    for p in model.parameters():  # the zero-initialised projections would hide the attention
        torch.nn.init.normal_(p, std=0.2)
    return model.eval()


def training_memory(model, strokes, lengths):
    """The rows (one per real stroke, sketch-major) and the memory of one noise draw of ``DiffusionObjective``."""
    s = strokes.shape[1]
    sketch, stroke = (torch.arange(s)[None] < lengths[:, None]).nonzero(as_tuple=True)
    return sketch, stroke, model.history_memory(strokes, sketch, stroke, stroke, num_slots=s)


def test_a_stroke_attends_only_to_the_strokes_before_it():
    model = attending_model()
    strokes = torch.rand(2, 5, ATTENDING["points_per_stroke"], 2) * 2 - 1
    lengths = torch.tensor([5, 5])
    noisy, t = torch.randn(10, ATTENDING["points_per_stroke"], 2), torch.arange(10) * 90
    _, _, memory = training_memory(model, strokes, lengths)
    changed = strokes.clone()
    changed[:, 3:] = 0.5  # strokes 0..3 were drawn before this change; stroke 4 sees it
    _, _, changed_memory = training_memory(model, changed, lengths)
    with torch.no_grad():
        a, b = model(noisy, t, None, memory), model(noisy, t, None, changed_memory)
    first_four = torch.tensor([k < 4 for _ in range(2) for k in range(5)])
    torch.testing.assert_close(a[first_four], b[first_four])
    assert not torch.allclose(a[~first_four], b[~first_four])


def test_sampling_gives_a_stroke_the_memory_training_gave_it():
    """Each stroke denoised alone with its history, as the pipeline does, matches the batched training layout."""
    model = attending_model()
    strokes = torch.rand(3, 4, ATTENDING["points_per_stroke"], 2) * 2 - 1
    lengths = torch.tensor([4, 2, 3])
    sketch, stroke, memory = training_memory(model, strokes, lengths)
    noisy = torch.randn(len(sketch), ATTENDING["points_per_stroke"], 2)
    t = torch.full((len(sketch),), 500)
    with torch.no_grad():
        batched = model(noisy, t, None, memory)
        for row, (b, k) in enumerate(zip(sketch.tolist(), stroke.tolist())):
            alone = model.history_memory(strokes[b : b + 1, :k], torch.tensor([0]), torch.tensor([0]),
                                         torch.tensor([k]), num_slots=1)
            torch.testing.assert_close(model(noisy[row : row + 1], t[:1], None, alone)[0], batched[row])


def test_training_objective_reaches_the_attention():
    model = attending_model().train()
    train_scheduler, _ = build_schedulers(type("Args", (), dict(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
        sampling_scheduler="ddim"))())
    objective = DiffusionObjective(model, train_scheduler, noise_draws=2, stop_loss_weight=0.1)
    strokes = torch.rand(2, 3, ATTENDING["points_per_stroke"], 2) * 2 - 1
    loss, _, _ = objective(strokes, torch.tensor([3, 2]), [torch.Generator().manual_seed(i) for i in range(2)])
    loss.backward()
    assert model.history_attention[0].q.weight.grad.abs().sum() > 0
    assert model.memory_embed[0].weight.grad.abs().sum() > 0


def test_an_attending_pipeline_is_deterministic_and_its_history_matters():
    pipe = make_tiny_pipeline(head_num_blocks=2, history_attention_layers=2)
    a = pipe(num_sketches=4, generator=torch.Generator().manual_seed(0), output_type="strokes").strokes
    b = pipe(num_sketches=4, generator=torch.Generator().manual_seed(0), output_type="strokes").strokes
    assert sketches_equal(a, b)
    for block in pipe.transformer.history_attention:
        torch.nn.init.zeros_(block.proj.weight)
        torch.nn.init.zeros_(block.proj.bias)
    c = pipe(num_sketches=4, generator=torch.Generator().manual_seed(0), output_type="strokes").strokes
    assert not sketches_equal(a, c)


def test_more_attention_layers_than_denoiser_blocks_is_refused():
    with pytest.raises(ValueError, match="history_attention_layers must be between 0 and head_num_blocks=1"):
        StrokeDiffusionModel(**dict(TINY_MODEL, history_attention_layers=2))


def test_keys_and_values_made_once_give_the_outputs_made_at_every_step():
    model = attending_model()
    strokes = torch.rand(3, 4, ATTENDING["points_per_stroke"], 2) * 2 - 1
    _, _, memory = training_memory(model, strokes, torch.tensor([4, 2, 3]))
    noisy, t = torch.randn(9, ATTENDING["points_per_stroke"], 2), torch.full((9,), 300)
    with torch.no_grad():
        cached = model.with_keys_values(memory)
        assert len(cached.keys_values) == 2 and memory.keys_values is None
        assert torch.equal(model(noisy, t, None, memory), model(noisy, t, None, cached))
    assert model.with_keys_values(None) is None


def test_a_bad_attention_layer_count_is_a_named_flag_error(tmp_path, capsys):
    from sketch_diffusion.train_options import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--category", "cat", "--output-dir", str(tmp_path), "--head-num-blocks", "2",
                    "--history-attention-layers", "3"])
    assert "--history-attention-layers must be between 0 and --head-num-blocks 2, got 3" in capsys.readouterr().err
