"""A zoo of tiny, random, local causal LMs with different architectures and tokenizers.

Fusion needs *heterogeneous* source models (different vocabularies, different tokenizer
families, different architectures), and tests and demos cannot download any. So the zoo builds
them here: tokenizers trained by the ``tokenizers`` library on real Korean text from the data
directory (so Korean tokenizes into plausible pieces, not bytes), models random-initialised
from a fixed seed, all saved in the ordinary ``save_pretrained`` layout that the ``Auto*``
classes load offline. Everything is deterministic, so a build is a cache key, not an artefact.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fusion.errors import FusionError
from fusion.zoo_training import TrainingRecipe
from runrecords.atomic import atomic_directory, check_output_path, write_text_atomic

# Bump whenever anything below changes what lands on disk: it keys zoo.json and caches.
ZOO_VERSION = "1"
# Bump whenever the training code (fusion/zoo_training.py, zoo_data.py) changes what a
# trained model learns: it keys the trained models' markers.
TRAINING_VERSION = "3"  # 3: weighted text entries, general text without reviews, a
# fusion share of every source's documents that no model trains on (zoo_data)

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "zoo.json"
MARKER = "zoo-model.json"
TRAINING = "training.json"  # a trained model's recipe, held-out loss and timing

# Fixed corpus: the first NSMC reviews plus every KoBEST BoolQ passage and question
# (~27k lines, ~1.5M characters): a few seconds of tokenizer training, always the same text.
NSMC_FILE = "nsmc/ratings_test.txt"
BOOLQ_FILE = "kobest_v1/boolq/train.tsv"
NSMC_LINES = 20_000

# Chat templates. Models whose tokenizer prepends BOS get ``{{ bos_token }}`` in front (see
# chat_template()), since apply_chat_template tokenizes with add_special_tokens=False.
PLAIN_CHAT_TEMPLATE = """\
{%- for message in messages %}
{%- if message['role'] == 'system' %}{{ '### System:\\n' + message['content'] + '\\n\\n' }}
{%- elif message['role'] == 'user' %}{{ '### User:\\n' + message['content'] + '\\n\\n' }}
{%- elif message['role'] == 'assistant' %}
{{- '### Assistant:\\n' + message['content'] + eos_token + '\\n\\n' }}
{%- else %}{{ raise_exception('unknown role: ' + message['role']) }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{ '### Assistant:\\n' }}{% endif %}"""

CHATML_TEMPLATE = """\
{%- for message in messages %}
{%- if message['role'] not in ['system', 'user', 'assistant'] %}
{{- raise_exception('unknown role: ' + message['role']) }}
{%- endif %}
{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"""


@dataclass(frozen=True)
class ZooSpec:
    """One zoo model: its architecture, its tokenizer recipe and its size."""

    name: str
    architecture: str  # transformers class name, e.g. "LlamaForCausalLM"
    # "byte-bpe": GPT-2 style byte-level BPE (Ġ); "qwen2-bpe": the same with Qwen2's NFC +
    # split regex (transformers' own Qwen2Tokenizer pipeline); "metaspace-bpe": SentencePiece
    # style BPE (▁) with <0xNN> byte fallback, the Llama-2/Mistral layout.
    tokenizer_kind: str
    vocab_size: int  # total, special and byte-fallback tokens included
    chat_style: str  # "plain" (### User:) or "chatml" (<|im_start|>)
    bos_token: str
    eos_token: str
    unk_token: str
    pad_token: str
    add_bos: bool = False  # the tokenizer's post-processor prepends BOS
    extra_special_tokens: tuple[str, ...] = ()
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int | None = 2  # None: the architecture has no grouped-query attention
    intermediate_size: int = 128
    max_positions: int = 1024
    tie_embeddings: bool = False
    training: TrainingRecipe | None = None  # None: random-initialised (unit tests)

    @property
    def special_tokens(self) -> list[str]:
        """Special tokens in id order (0, 1, ...), without duplicates."""
        ordered = [self.unk_token, self.bos_token, self.eos_token, self.pad_token]
        return list(dict.fromkeys([*ordered, *self.extra_special_tokens]))


QUICK_SPECS: tuple[ZooSpec, ...] = (
    ZooSpec(
        name="tiny-llama",
        architecture="LlamaForCausalLM",
        tokenizer_kind="byte-bpe",
        vocab_size=3000,
        chat_style="plain",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        add_bos=True,
    ),
    ZooSpec(
        name="tiny-gpt2",
        architecture="GPT2LMHeadModel",
        tokenizer_kind="byte-bpe",
        vocab_size=2000,
        chat_style="plain",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|pad|>",
        num_kv_heads=None,
        tie_embeddings=True,
    ),
    # transformers 5 loads every model_type "qwen2" checkpoint with Qwen2Tokenizer, which
    # rebuilds its own byte-level pipeline from the vocabulary: a Qwen2 model can only carry a
    # Qwen2-style tokenizer. The SentencePiece-style tokenizer therefore goes with Mistral.
    ZooSpec(
        name="tiny-qwen2",
        architecture="Qwen2ForCausalLM",
        tokenizer_kind="qwen2-bpe",
        vocab_size=5000,
        chat_style="chatml",
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=("<|im_start|>",),
        tie_embeddings=True,
    ),
    ZooSpec(
        name="tiny-mistral",
        architecture="MistralForCausalLM",
        tokenizer_kind="metaspace-bpe",
        vocab_size=4000,
        chat_style="chatml",
        bos_token="<s>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
        pad_token="</s>",
        add_bos=True,
        extra_special_tokens=("<|im_start|>",),
    ),
)

# quick=False: same tokenizers, somewhat larger (still untrained) models.
FULL_SPECS: tuple[ZooSpec, ...] = tuple(
    dataclasses.replace(spec, hidden_size=128, num_layers=4, intermediate_size=256)
    for spec in QUICK_SPECS
)


def _trained(tokenizer_of: str, name: str, recipe: TrainingRecipe) -> ZooSpec:
    """A demo-zoo spec: the random zoo's ``tokenizer_of`` architecture and tokenizer recipe,
    wider and deeper (hidden 128, 4 layers), trained by ``recipe``."""
    spec = next(spec for spec in QUICK_SPECS if spec.name == tokenizer_of)
    return dataclasses.replace(
        spec, name=name, hidden_size=128, num_layers=4, intermediate_size=384, training=recipe
    )


# The demo zoo: trained from scratch here on training splits only (fusion/zoo_data.py), with
# complementary strengths as in FuseLLM's setting. The target knows only general Korean text
# (no comment, no review); each source knows a domain the target never saw, weighted up in its
# training stream: UnSmile's comments with their korunsmile class (hate-gpt2), SentiNeg's
# shopping reviews with their nsmc / kobest_sentineg labels (sentiment-qwen2, trained on its
# domain alone). No model trains on the fusion share (zoo_data.FUSION_SHARE_PERCENT).
# Different architectures and vocabularies. The sentiment source is Qwen2 with its byte-level
# pipeline, not Mistral's '▁' SentencePiece layout: with the same recipe a Mistral source fell
# back to one-hot targets at half its positions (its tokens align poorly with the target's)
# and transferred nothing measurable (docs/demo-history.md).
DEMO_SPECS: tuple[ZooSpec, ...] = (
    _trained("tiny-llama", "target-llama", TrainingRecipe(texts=("general",), steps=300)),
    _trained(
        "tiny-gpt2",
        "hate-gpt2",
        TrainingRecipe(
            texts=("general", "comments*2", "unsmile"),
            steps=600,
            finetune_texts=("unsmile",),
            finetune_steps=300,
        ),
    ),
    _trained(
        "tiny-qwen2",
        "sentiment-qwen2",
        TrainingRecipe(
            texts=("reviews*2", "sentiment"),
            steps=400,
            finetune_texts=("sentiment",),
            finetune_steps=200,
        ),
    ),
)

ZOOS: dict[str, tuple[ZooSpec, ...]] = {
    "demo": DEMO_SPECS,
    "random": QUICK_SPECS,
    "random-large": FULL_SPECS,
}
# The demo's fusion corpus: a small seeded sample of every domain, written beside the zoo.
DEMO_CORPUS = "corpora/fusion-mix.jsonl"
DEMO_CORPUS_MIX = {"general": 600, "unsmile": 400, "sentiment": 400}


def specs(
    quick: bool = True, names: list[str] | None = None, kind: str | None = None
) -> list[ZooSpec]:
    """The specs to build, in zoo order; unknown names are a user error."""
    if kind is None:
        kind = "random" if quick else "random-large"
    if kind not in ZOOS:
        raise FusionError(f"unknown zoo {kind!r}; known: {', '.join(ZOOS)}")
    chosen = ZOOS[kind]
    if names is None:
        return list(chosen)
    known = [spec.name for spec in chosen]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise FusionError(f"unknown zoo model(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [spec for spec in chosen if spec.name in names]


# --- corpus -----------------------------------------------------------------------------------


def _tsv_column(path: Path, columns: list[str], limit: int | None = None) -> Iterator[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [column for column in columns if column not in (reader.fieldnames or [])]
        if missing:
            raise FusionError(f"{path}: no column(s) {', '.join(missing)} in the header")
        for index, row in enumerate(reader):
            if limit is not None and index >= limit:
                return
            for column in columns:
                text = (row.get(column) or "").strip()
                if text:
                    yield text


def korean_corpus(root: Path | None = None) -> list[str]:
    """The fixed Korean training text for the zoo's tokenizers (same lines on every call)."""
    from tasks.datadir import ENV_VAR, data_dir, require_file
    from tasks.errors import TaskDataError

    try:
        root = root if root is not None else data_dir()
        if root is None:
            raise FusionError(
                f"the tiny-model zoo trains its tokenizers on local Korean data: set {ENV_VAR} "
                "to the data directory (with nsmc/ and kobest_v1/)"
            )
        nsmc = require_file(root, NSMC_FILE)
        boolq = require_file(root, BOOLQ_FILE)
    except TaskDataError as exc:
        raise FusionError(str(exc)) from exc
    lines = list(_tsv_column(nsmc, ["document"], limit=NSMC_LINES))
    lines.extend(_tsv_column(boolq, ["Text", "Question"]))
    return lines


# --- tokenizers -------------------------------------------------------------------------------


def _trainer(spec: ZooSpec, vocab_size: int, byte_level: bool) -> Any:
    from tokenizers import pre_tokenizers, trainers

    alphabet = pre_tokenizers.ByteLevel.alphabet() if byte_level else ["\n"]
    return trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=spec.special_tokens,
        initial_alphabet=alphabet,
        show_progress=False,
    )


def _byte_bpe(spec: ZooSpec, corpus: list[str]) -> Any:
    """GPT-2 style byte-level BPE: every string encodes, spaces show as ``Ġ``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(corpus, _trainer(spec, spec.vocab_size, byte_level=True))
    if spec.add_bos:
        bos_id = tokenizer.token_to_id(spec.bos_token)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos_token} $A",
            pair=f"{spec.bos_token} $A {spec.bos_token} $B:1",
            special_tokens=[(spec.bos_token, bos_id)],
        )
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def _metaspace_bpe(spec: ZooSpec, corpus: list[str]) -> Any:
    """SentencePiece-style BPE (Llama-2/Mistral layout): ``▁`` for spaces, bytes as fallback.

    The trainer cannot add the 256 ``<0xNN>`` byte tokens itself, so the vocabulary is
    rebuilt after training: special tokens, then bytes, then the learned pieces. (Unigram, the
    other SentencePiece flavour, trains ~15x slower and not deterministically.)
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    def with_pipeline(tokenizer: Any) -> Any:
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
        # (no Fuse before Metaspace: on one fused token it would drop every ▁, not just the first)
        tokenizer.decoder = decoders.Sequence(
            [decoders.ByteFallback(), decoders.Metaspace(prepend_scheme="first")]
        )
        return tokenizer

    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]
    specials = spec.special_tokens
    draft = with_pipeline(Tokenizer(models.BPE(unk_token=spec.unk_token)))
    draft.train_from_iterator(
        corpus, _trainer(spec, spec.vocab_size - len(byte_tokens), byte_level=False)
    )
    learned = json.loads(draft.to_str())["model"]
    pieces = [piece for piece, _ in sorted(learned["vocab"].items(), key=lambda item: item[1])]
    ordered = specials + byte_tokens + [piece for piece in pieces if piece not in specials]
    model = models.BPE(
        vocab={piece: index for index, piece in enumerate(ordered)},
        merges=[tuple(merge) for merge in learned["merges"]],
        unk_token=spec.unk_token,
        byte_fallback=True,
        fuse_unk=True,
    )
    tokenizer = with_pipeline(Tokenizer(model))
    tokenizer.add_special_tokens(specials)
    if spec.add_bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos_token} $A",
            pair=f"{spec.bos_token} $A {spec.bos_token} $B:1",
            special_tokens=[(spec.bos_token, tokenizer.token_to_id(spec.bos_token))],
        )
    return tokenizer


def chat_template(spec: ZooSpec) -> str:
    """The spec's Jinja chat template (BOS written out where the tokenizer prepends one)."""
    template = CHATML_TEMPLATE if spec.chat_style == "chatml" else PLAIN_CHAT_TEMPLATE
    return ("{{- bos_token }}\n" + template) if spec.add_bos else template


def build_tokenizer(spec: ZooSpec, corpus: list[str]) -> Any:
    """The spec's tokenizer, trained on ``corpus``, as the class AutoTokenizer will load."""
    from transformers import PreTrainedTokenizerFast, Qwen2Tokenizer

    options: dict[str, Any] = {
        "bos_token": spec.bos_token,
        "eos_token": spec.eos_token,
        "unk_token": spec.unk_token,
        "pad_token": spec.pad_token,
        "model_max_length": spec.max_positions,
        "clean_up_tokenization_spaces": False,
    }
    if spec.extra_special_tokens:
        options["extra_special_tokens"] = list(spec.extra_special_tokens)
    if spec.tokenizer_kind == "qwen2-bpe":
        # AutoTokenizer rebuilds Qwen2Tokenizer from vocab + merges on load: train on its own
        # pipeline and construct it the same way, so the saved and loaded tokenizers agree.
        backend = Qwen2Tokenizer().backend_tokenizer
        backend.train_from_iterator(corpus, _trainer(spec, spec.vocab_size, byte_level=True))
        learned = json.loads(backend.to_str())["model"]
        tokenizer = Qwen2Tokenizer(
            vocab=learned["vocab"],
            merges=[tuple(merge) for merge in learned["merges"]],
            **options,
        )
    else:
        builders = {"byte-bpe": _byte_bpe, "metaspace-bpe": _metaspace_bpe}
        if spec.tokenizer_kind not in builders:
            raise FusionError(f"{spec.name}: unknown tokenizer kind {spec.tokenizer_kind!r}")
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=builders[spec.tokenizer_kind](spec, corpus),
            **options,
        )
    tokenizer.chat_template = chat_template(spec)
    return tokenizer


# --- models -----------------------------------------------------------------------------------


def _config(spec: ZooSpec, tokenizer: Any) -> Any:
    from transformers import GPT2Config, LlamaConfig, MistralConfig, Qwen2Config

    common = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": spec.tie_embeddings,
    }
    if spec.architecture == "GPT2LMHeadModel":
        if spec.training is not None:  # trained here in minutes: dropout would only slow it
            common.update(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        return GPT2Config(
            n_embd=spec.hidden_size,
            n_layer=spec.num_layers,
            n_head=spec.num_heads,
            n_inner=spec.intermediate_size,
            n_positions=spec.max_positions,
            **common,
        )
    config_classes: dict[str, Any] = {
        "LlamaForCausalLM": LlamaConfig,
        "Qwen2ForCausalLM": Qwen2Config,
        "MistralForCausalLM": MistralConfig,
    }
    if spec.architecture not in config_classes:
        raise FusionError(f"{spec.name}: unsupported architecture {spec.architecture}")
    if spec.architecture == "MistralForCausalLM":
        common["sliding_window"] = None
    return config_classes[spec.architecture](
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads or spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_positions,
        **common,
    )


def model_seed(spec: ZooSpec, seed: int) -> int:
    """Per-model seed: stable across processes (no ``hash()``), different per model."""
    return (seed * 1_000_003 + zlib.crc32(spec.name.encode("utf-8"))) % 2**31


def build_model(spec: ZooSpec, tokenizer: Any, seed: int = 0) -> Any:
    """A random-initialised float32 model whose weights depend only on ``spec`` and ``seed``."""
    import torch
    import transformers

    config = _config(spec, tokenizer)
    model_class = getattr(transformers, spec.architecture)
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream alone
        torch.manual_seed(model_seed(spec, seed))
        model = model_class(config).to(torch.float32)
    model.eval()
    generation = model.generation_config
    generation.bos_token_id = tokenizer.bos_token_id
    generation.eos_token_id = tokenizer.eos_token_id
    generation.pad_token_id = tokenizer.pad_token_id
    return model


def _fingerprint(spec: ZooSpec, seed: int) -> dict[str, Any]:
    """What a built model depends on, as JSON gives it back (tuples become lists)."""
    recipe = {"zoo_version": ZOO_VERSION, "seed": seed, "spec": dataclasses.asdict(spec)}
    if spec.training is not None:
        recipe["training_version"] = TRAINING_VERSION
    return json.loads(json.dumps(recipe))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_built(target: Path, fingerprint: dict[str, Any]) -> bool:
    marker = _read_json(target / MARKER)
    return (
        marker is not None
        and marker.get("fingerprint") == fingerprint
        and isinstance(marker.get("entry"), dict)
        and (target / "model.safetensors").is_file()
        and (target / "tokenizer.json").is_file()
    )


def build_one(
    spec: ZooSpec,
    target: Path,
    corpus: list[str],
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Build (and train, when the spec has a recipe) into a scratch sibling, then swap it in,
    so a crash leaves no half model."""
    tokenizer = build_tokenizer(spec, corpus)
    model = build_model(spec, tokenizer, seed)
    entry = {
        "name": spec.name,
        "architecture": spec.architecture,
        "tokenizer_kind": spec.tokenizer_kind,
        "vocab_size": len(tokenizer),
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "hidden_size": spec.hidden_size,
        "num_layers": spec.num_layers,
        "path": spec.name,
        "seed": seed,
    }
    training = None
    if spec.training is not None:
        training = _train(spec, model, tokenizer, seed, on_step)
        entry["held_out_loss"] = training["held_out_loss"]
    with atomic_directory(target) as staging, quiet_transformers():
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if training is not None:
            _write_json(staging / TRAINING, training)
        _write_json(staging / MARKER, {"fingerprint": _fingerprint(spec, seed), "entry": entry})
    return entry


def _train(
    spec: ZooSpec,
    model: Any,
    tokenizer: Any,
    seed: int,
    on_step: Callable[[int, float], None] | None,
) -> dict[str, Any]:
    """Pre-train ``model`` on its recipe; what ``training.json`` records beside it."""
    import time

    from fusion import zoo_data
    from fusion.zoo_training import finetune_answers, held_out_loss, pretrain

    recipe = spec.training
    assert recipe is not None
    rows: list[str] = []
    repeats: dict[str, int] = {}
    for entry in recipe.texts:
        name, times = zoo_data.weighted(entry)
        rows += zoo_data.training_rows(name)
        for row in zoo_data.training_rows(name):
            repeats[row] = max(repeats.get(row, 1), times)
    # Held out before repetition, so no held-out row is trained on in another copy.
    train_rows, held_rows = zoo_data.split_held_out(tuple(rows), recipe.held_out_fraction, seed)
    train_rows = [row for row in train_rows for _ in range(repeats[row])]
    started = time.monotonic()
    losses = pretrain(model, tokenizer, train_rows, recipe, model_seed(spec, seed), on_step)
    finetune: dict[str, Any] = {}
    if recipe.finetune_steps:
        task_rows: list[str] = []
        for name in recipe.finetune_texts:
            task_rows += zoo_data.training_rows(name)
        # The specialist phase sees the same training rows, never the held-out ones.
        held = set(held_rows)
        task_rows = [row for row in task_rows if row not in held]

        def on_finetune(step: int, loss: float) -> None:
            if on_step is not None:
                on_step(recipe.steps + step, loss)

        tuned = finetune_answers(
            model, tokenizer, task_rows, recipe, model_seed(spec, seed) + 1, on_finetune
        )
        finetune = {
            "finetune_rows": len(task_rows),
            "finetune_answer_loss_first_tenth": _mean(tuned[: max(1, len(tuned) // 10)]),
            "finetune_answer_loss_last_tenth": _mean(tuned[-max(1, len(tuned) // 10) :]),
        }
    return {
        "recipe": dataclasses.asdict(recipe),
        "text_sources": {
            entry: zoo_data.DESCRIPTIONS[zoo_data.weighted(entry)[0]] for entry in recipe.texts
        },
        "train_rows": len(train_rows),
        "held_out_rows": len(held_rows),
        "held_out_loss": held_out_loss(
            model, tokenizer, held_rows[: recipe.held_out_max_rows], spec.max_positions
        ),
        "held_out_rows_scored": min(len(held_rows), recipe.held_out_max_rows),
        "held_out_loss_unit": "nats per token, this model's tokenizer (not comparable across models)",
        "loss_first_tenth": _mean(losses[: max(1, len(losses) // 10)]),
        "loss_last_tenth": _mean(losses[-max(1, len(losses) // 10) :]),
        **finetune,
        "seconds": round(time.monotonic() - started, 1),
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def tokenizer_corpus(kind: str) -> list[str]:
    """What a zoo's tokenizers train on: the random zoo's fixed text, or for the demo zoo
    every training-split text its models see (train splits only)."""
    if kind != "demo":
        return korean_corpus()
    from fusion import zoo_data

    return [row for name in zoo_data.SOURCES for row in zoo_data.text_source(name)]


def write_demo_corpus(output: Path, seed: int) -> Path:
    """The demo's fusion corpus (``output/corpora/fusion-mix.jsonl``), rewritten only when
    its content would change."""
    from fusion import zoo_data

    path = output / DEMO_CORPUS
    rows = zoo_data.mixture(DEMO_CORPUS_MIX, seed)
    text = "".join(
        json.dumps({"text": row, "group": group}, ensure_ascii=False) + "\n" for group, row in rows
    )
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    return path


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-shard tqdm bars: the zoo shows its own progress."""
    from transformers.utils import logging

    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Exclusive inter-process lock: two builders of one zoo take turns, the second no-ops."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_zoo(
    output: Path,
    quick: bool = True,
    seed: int = 0,
    names: list[str] | None = None,
    progress: bool = True,
    kind: str | None = None,
    jobs: int | None = None,
) -> list[Path]:
    """Build (or find already built) the zoo's models under ``output``; their directories.

    ``kind``: ``demo`` (trained here, minutes), ``random`` (``quick``, seconds) or
    ``random-large``. Models whose directory already carries this recipe's marker are
    skipped, so a rebuild is a no-op. ``output/zoo.json`` lists every model present for this
    zoo version (paths are relative to ``output``); the demo zoo also writes its fusion
    corpus (``corpora/fusion-mix.jsonl``). Trained models train in worker processes, one
    thread each, ``jobs`` at a time (default: one per core), so their weights are the same
    whatever the machine's core count (``fusion/zoo_parallel.py``). The workers are spawned, so a script that
    calls this must do so under ``if __name__ == "__main__":`` (Python's rule for spawned
    processes: a worker imports the script again).
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    kind = kind or ("random" if quick else "random-large")
    chosen = specs(names=names, kind=kind)
    output = Path(output)
    check_output_path(output, directory=True)
    output.mkdir(parents=True, exist_ok=True)
    with _locked(output / ".zoo.lock"):
        manifest = _read_json(output / MANIFEST) or {}
        models = (
            dict(manifest.get("models", {})) if manifest.get("zoo_version") == ZOO_VERSION else {}
        )
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        )
        console = Console(stderr=True)
        with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
            task = bar.add_task("zoo", total=len(chosen))
            missing = []
            for spec in chosen:
                if _is_built(output / spec.name, _fingerprint(spec, seed)):
                    bar.update(task, description=f"{spec.name}: cached", advance=1)
                    models[spec.name] = (_read_json(output / spec.name / MARKER) or {})["entry"]
                else:
                    missing.append(spec)
            if missing:
                corpus = tokenizer_corpus(kind)
                untrained = [spec for spec in missing if spec.training is None]
                for spec in untrained:  # seconds each, and no thread count changes them
                    bar.update(task, description=f"{spec.name}: building")
                    models[spec.name] = build_one(spec, output / spec.name, corpus, seed)
                    bar.update(task, description=f"{spec.name}: built", advance=1)
                trained = [spec for spec in missing if spec.training is not None]
                if trained:
                    models.update(_train_missing(trained, output, corpus, seed, jobs, bar, task))
            if kind == "demo":
                write_demo_corpus(output, seed)
        models = {name: entry for name, entry in models.items() if (output / name).is_dir()}
        new_manifest = {"zoo_version": ZOO_VERSION, "models": models}
        if new_manifest != manifest:
            _write_json(output / MANIFEST, new_manifest)
    return [output / spec.name for spec in chosen]


def _train_missing(
    trained: list[ZooSpec],
    output: Path,
    corpus: list[str],
    seed: int,
    jobs: int | None,
    bar: Any,
    task: Any,
) -> dict[str, dict[str, Any]]:
    """Train ``trained`` in worker processes, a progress bar per model."""
    import os

    from fusion.zoo_parallel import build_in_workers

    workers = jobs if jobs is not None else min(len(trained), os.cpu_count() or 1)
    bars = {}
    for spec in trained:
        assert spec.training is not None
        total = spec.training.steps + spec.training.finetune_steps
        bars[spec.name] = bar.add_task(f"  {spec.name}: waiting", total=total, start=False)
    bar.update(task, description=f"training {len(trained)} model(s), {workers} at a time")

    def on_step(name: str, step: int, loss: float) -> None:
        if step == 0:  # its clock starts when its worker does
            bar.start_task(bars[name])
        text = f"  {name}: starting" if step == 0 else f"  {name}: loss {loss:.3f}"
        bar.update(bars[name], completed=step, description=text)
        total = bar.tasks[bars[name]].total
        if step == total:
            bar.update(task, advance=1)

    return build_in_workers(
        [(spec, output / spec.name) for spec in trained], corpus, seed, workers, on_step
    )


def cached_zoo(cache_root: Path | None = None) -> Path:
    """The quick zoo, built once per zoo version and then reused: in ``cache_root`` when given
    (the test suite's ``zoo`` fixture passes a folder in pytest's cache), else in the checkout's
    ``.cache/zoo-<version>`` (bench scripts and the README's worked examples)."""
    root = (
        Path(cache_root) if cache_root is not None else REPO_ROOT / ".cache" / f"zoo-{ZOO_VERSION}"
    )
    build_zoo(root, quick=True, seed=0, progress=False)
    return root
