"""Strict recipes: every key of every section is known, typos name the closest key, values take their field's type."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from voxkit.asr.args import RealtimeArgs
from voxkit.asr.options import MAX_DELAY_STEPS, MIN_DELAY_STEPS
from voxkit.asr.task import AsrTask, AsrTaskConfig
from voxkit.config import strict_from_dict
from voxkit.errors import VoxkitError
from voxkit.lm import TransformerArgs
from voxkit.tokenizer import ByteTokenizer
from voxkit.train.recipe import Recipe, RecipeError, load_recipe, save_recipe
from voxkit.train.registry import ModelSpec, TaskSpec, build_model, known_models, known_tasks, register_model, register_task

ASR_TINY = Path(__file__).resolve().parent.parent / "recipes" / "asr_tiny.toml"


@dataclasses.dataclass
class ToyOptions:
    dim: int = 32
    window: int | list[int] | None = None


@dataclasses.dataclass
class ToyTaskOptions:
    shift: int = 0
    batch_size: int = 4
    note: str = ""


register_model("recipe_toy", ModelSpec(ToyOptions, build=lambda options: None))
register_task("recipe_toy_task", TaskSpec(ToyTaskOptions, build=lambda options, model: None))

TOY = """
[model]
name = "recipe_toy"
dim = 32

[optim]
lr = 0.01

[train]
max_steps = 3

[tasks.toy]
type = "recipe_toy_task"
weight = 1.0
shift = 0
"""


def write(tmp_path: Path, text: str, name: str = "r.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def asr_tiny_with(tmp_path: Path, old: str, new: str) -> Path:
    text = ASR_TINY.read_text()
    assert text.count(old) == 1, old
    return write(tmp_path, text.replace(old, new))


# ---------------------------------------------------------------------------- unknown keys


def test_a_decoder_typo_names_the_key_and_the_closest_one(tmp_path: Path) -> None:
    """``n_layer = 2`` used to build the default 32-layer decoder silently."""
    path = asr_tiny_with(tmp_path, "[model.decoder]\ndim = 256\nn_layers = 4", "[model.decoder]\ndim = 256\nn_layer = 2")
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert str(err.value) == f"{path}: unknown key 'n_layer' in [model.decoder]; did you mean 'n_layers'?"
    with pytest.raises(RecipeError) as err:
        load_recipe(ASR_TINY, ["model.decoder.n_layer=2"])
    assert str(err.value) == "override 'model.decoder.n_layer=2': unknown key 'n_layer' in [model.decoder]; did you mean 'n_layers'?"


def test_unknown_keys_in_task_sections(tmp_path: Path) -> None:
    path = asr_tiny_with(tmp_path, "max_delay = 30\n", "max_delay = 30\nmax_dealy = 20\n")
    with pytest.raises(RecipeError, match=r"unknown key 'max_dealy' in \[tasks.asr\]; did you mean 'max_delay'\?"):
        load_recipe(path)
    path = asr_tiny_with(tmp_path, "[tasks.asr]\nweight = 1.0", "[tasks.asr]\nwieght = 1.0")  # a trainer key of the section
    with pytest.raises(RecipeError, match=r"unknown key 'wieght' in \[tasks.asr\]; did you mean 'weight'\?"):
        load_recipe(path)
    path = asr_tiny_with(tmp_path, "ctc_head = true", "ctc_heads = true")
    with pytest.raises(RecipeError, match=r"unknown key 'ctc_heads' in \[model\]; did you mean 'ctc_head'\?"):
        load_recipe(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("tasks.asr.max_dealy=3", "override 'tasks.asr.max_dealy=3': unknown key 'max_dealy' in [tasks.asr]; did you mean 'max_delay'?"),
        ("model.encoder.hidden_dimm=64", "unknown key 'hidden_dimm' in [model.encoder]; did you mean 'hidden_dim'?"),
        ("train.max_step=3", "override 'train.max_step=3': unknown key 'max_step' in [train]; did you mean 'max_steps'?"),
        ("optim.warmup=3", "unknown key 'warmup' in [optim]; did you mean 'warmup_steps'?"),
        ("data.tokeniser=byte", "unknown key 'tokeniser' in [data]; did you mean 'tokenizer'?"),
        ("modle.name=x", "unknown section 'modle'; did you mean 'model'?"),
        ("tasks.asrr.min_delay=2", "the recipe has no task 'asrr' (tasks: asr); did you mean 'asr'?"),
        ("model.name=realtime_recogniser", "unknown model 'realtime_recogniser'; did you mean 'realtime_recognizer'?"),
    ],
)
def test_unknown_override_keys_name_the_override_and_the_closest_key(override: str, message: str) -> None:
    with pytest.raises(RecipeError) as err:
        load_recipe(ASR_TINY, [override])
    assert message in str(err.value) and str(err.value).startswith(f"override {override!r}: ")


def test_overrides_are_typed_by_their_fields(tmp_path: Path) -> None:
    path = write(tmp_path, TOY)
    r = load_recipe(path, [
        "train.max_steps=200", "optim.lr=3e-4", "tasks.toy.shift=7", "optim.betas=[0.8, 0.9]", "train.progress=true",
        "tasks.toy.batch_size=8", "tasks.toy.note=12", "data.tokenizer=byte", "model.window=[4, 8]",
        "+tasks.more.type=recipe_toy_task", "tasks.more.weight=2",
    ])
    assert r.train.max_steps == 200 and isinstance(r.train.max_steps, int)
    assert r.optim.lr == 3e-4 and r.optim.betas == [0.8, 0.9] and r.train.progress is True
    assert r.tasks["toy"] == {"type": "recipe_toy_task", "weight": 1.0, "shift": 7, "batch_size": 8, "note": "12"}  # a key the file lacked
    assert r.task_options("toy") == {"shift": 7, "batch_size": 8, "note": "12"} and r.task_weights() == {"toy": 1.0, "more": 2.0}
    assert r.data.tokenizer == "byte" and r.model == {"name": "recipe_toy", "dim": 32, "window": [4, 8]}
    assert load_recipe(path, ["model.window=none"]).model["window"] is None
    # the saved recipe.json loads back to the same recipe
    save_recipe(r, tmp_path / "recipe.json")
    assert load_recipe(tmp_path / "recipe.json") == r
    bad = {
        "train.max_steps=abc": "integer",
        "tasks.toy.shift=0.5": "integer",
        "model.window=wide": "an integer, a list of integers or none",
        "train.progress=maybe": "true or false",
        "optim.schedule=wavy": "optim.schedule",
        "tasks.toy.weight=-1": "tasks.toy.weight must be >= 0",
        "train.max_steps": "section.key=value",
        "lr=1": "inside a section",
        "model=1": "inside a section",
    }
    for override, message in bad.items():
        with pytest.raises(VoxkitError, match=message):
            load_recipe(path, [override])
    files = {
        "[train]\nmax_steps = 'ten'": "integer",
        "[train\n": "not valid TOML",
        "[optimizer]\n": "did you mean 'optim'",
        "[train]\nfoo = 1": "unknown key 'foo' in \\[train\\]",
        "[train]\nmax_steps = 3": "\\[model\\] needs a name",
    }
    for text, message in files.items():
        with pytest.raises(VoxkitError, match=message):
            load_recipe(write(tmp_path, text))
    with pytest.raises(VoxkitError, match="not found"):
        load_recipe(tmp_path / "missing.toml")


# ---------------------------------------------------------------------------- the recogniser's sections


def test_asr_tiny_recipe_describes_the_bundled_shapes() -> None:
    recipe = load_recipe(ASR_TINY)
    model = build_model(recipe.model)
    args = model.args
    assert (args.n_left_pad_tokens, args.default_delay_tokens, args.right_pad_tokens, args.n_mels) == (4, 6, 10, 128)
    enc, dec = args.encoder, args.decoder
    shape = ("dim", "n_layers", "head_dim", "n_heads", "n_kv_heads", "hidden_dim", "sliding_window")
    assert [getattr(enc, k) for k in shape] == [192, 6, 48, 4, 4, 768, 750]
    assert enc.use_biases and enc.vocab_size == 0 and enc.rope_theta == 1e6 and not enc.ada_rms_norm_t_cond
    assert [getattr(dec, k) for k in shape] == [256, 4, 64, 4, 2, 768, 512]
    assert dec.vocab_size == 5754 and dec.ada_rms_norm_t_cond and dec.ada_rms_norm_t_cond_dim == 32 and dec.tied_embeddings
    assert model.ctc_head is not None
    assert recipe.tasks["asr"]["delay_sampling"] == "log_uniform" and recipe.data.tokenizer == "data/vocab"


def test_one_source_of_defaults(tmp_path: Path) -> None:
    """A recipe that leaves keys out gets the args dataclasses' defaults, not a second copy of them."""
    path = write(tmp_path, f"""
[model]
name = "realtime_recognizer"
[model.encoder]
dim = 32
n_layers = 1
head_dim = 8
n_heads = 4
n_kv_heads = 4
hidden_dim = 64
[model.decoder]
dim = 32
n_layers = 1
head_dim = 8
n_heads = 4
n_kv_heads = 2
hidden_dim = 64
vocab_size = {ByteTokenizer().vocab_size}
[data]
tokenizer = "byte"
[tasks.asr]
train = []
""")
    recipe = load_recipe(path)
    args = build_model(recipe.model).args
    published = {f.name: f.default for f in dataclasses.fields(RealtimeArgs) if f.default is not dataclasses.MISSING}
    assert {name: getattr(args, name) for name in published} == published  # left pad 32 (the published value), not 8
    assert args.encoder.norm_eps == TransformerArgs().norm_eps and args.decoder.max_seq_len is None
    options = strict_from_dict(AsrTaskConfig, recipe.task_options("asr"), ("tasks", "asr"))
    assert (options.min_delay, options.max_delay) == (MIN_DELAY_STEPS, MAX_DELAY_STEPS)
    row = {"audio": "x.wav", "text": "hi", "duration": 1.0, "words": [{"word": "hi", "start": 0.1, "end": 0.4}]}
    (tmp_path / "one.jsonl").write_text(json.dumps(row) + "\n")  # a task refuses an empty training set
    options.train = [str(tmp_path / "one.jsonl")]
    task = AsrTask(options, args, ByteTokenizer())
    assert task.eval_delay == args.default_delay_tokens  # the WER is measured at the model's own delay
    with pytest.raises(RecipeError, match=f"max_delay <= {MAX_DELAY_STEPS}"):
        load_recipe(path, [f"tasks.asr.max_delay={MAX_DELAY_STEPS + 1}"])
    with pytest.raises(RecipeError, match=r"\[tasks.asr\] needs 'train'"):
        load_recipe(write(tmp_path, path.read_text().replace("train = []", "augment = false")))


def test_params_json_stays_lenient() -> None:
    """Published params.json files carry keys voxkit does not model: they are kept, not refused."""
    args = TransformerArgs.from_dict({"dim": 8, "n_heads": 2, "n_kv_heads": 1, "quantization": {"bits": 4}})
    assert args.dim == 8 and args.extra == {"quantization": {"bits": 4}} and args.to_dict()["quantization"] == {"bits": 4}


# ---------------------------------------------------------------------------- where models come from


def test_models_and_tasks_are_found_by_entry_point() -> None:
    assert "realtime_recognizer" in known_models() and "asr" in known_tasks()


def test_the_trainer_imports_no_model_package() -> None:
    """Loading the trainer, its registry and the CLI command imports no model package (they come by name)."""
    code = ("import sys, voxkit.train.trainer, voxkit.train.registry, voxkit.cli.train; "
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
            "(['voxkit', 'asr'], ['voxkit', 'lm'], ['voxkit', 'codec'], ['voxkit', 'tts'], ['voxkit', 'chat'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_recipe_from_dict_keeps_task_options_for_their_owner() -> None:
    recipe = Recipe.from_dict({"model": {"name": "recipe_toy"}, "tasks": {"a": {"type": "recipe_toy_task", "shift": 1}}})
    assert recipe.task_type("a") == "recipe_toy_task" and recipe.task_options("a") == {"shift": 1} and recipe.task_weights() == {"a": 1.0}


def test_the_stage_one_recipe_grown_as_documented_and_the_long_stream_fine_tune_describe_the_bundled_model() -> None:
    """docs/asr.md grows asr_tiny's decoder to 6 layers x 1536; the result's params.json is the bundled one, languages included."""
    from voxkit.asr.checkpoint import load_recognizer
    from voxkit.asr.task import RecognizerRecipe

    recipe = load_recipe(ASR_TINY, ["model.decoder.n_layers=6", "model.decoder.hidden_dim=1536"])
    options = strict_from_dict(RecognizerRecipe, {k: v for k, v in recipe.model.items() if k != "name"}, ("model",))
    bundled = load_recognizer(Path(__file__).resolve().parent.parent / "voxkit" / "assets" / "realtime-tiny")
    assert options.model_args().to_params() == bundled.export_config()
    assert bundled.export_config()["languages"] == ["en", "fr", "es", "de"]
    # the long-stream fine-tune starts from the widened bundle: same shape, so its checkpoints average with it
    long = load_recipe(ASR_TINY.parent / "asr_tiny_long.toml")
    options = strict_from_dict(RecognizerRecipe, {k: v for k, v in long.model.items() if k != "name"}, ("model",))
    assert options.model_args().to_params() == bundled.export_config() and options.init_from == "runs/init_bundle"


def test_an_override_into_a_value_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, 'tasks = 5\n[model]\nname = "recipe_toy"\n')
    with pytest.raises(RecipeError, match=r"\[tasks\] must be a table, got int"):
        load_recipe(path, ['+tasks.x.train=["a"]'])
