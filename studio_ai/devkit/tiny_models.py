"""Tiny, randomly initialised models that load and generate like the real ones.

Stand-ins for Llama 3.2 Instruct (text) and MedGemma 4B-it (Gemma 3 image-text), small
enough (about 100k parameters, under 500 KB on disk) to create in a second on a CPU and to
serve from the local hub server. Weights are random: the outputs are gibberish, but every
code path (tokenizer, chat template, processor, generate, save/load) is the real one.
The files are byte-identical from run to run, so the hub server gives them stable hashes.

    python -m studio_ai.devkit.tiny_models OUT_DIR

writes OUT_DIR/studio-ai-test/tiny-llama and OUT_DIR/studio-ai-test/tiny-gemma3.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

ORG = "studio-ai-test"
TINY_LLAMA = f"{ORG}/tiny-llama"
TINY_GEMMA3 = f"{ORG}/tiny-gemma3"

_SEED = 0

_SENTENCES = [
    "The patient presented with a persistent cough and mild fever.",
    "Chest radiographs showed no consolidation in either lung.",
    "Metformin lowers blood glucose in adults with type 2 diabetes.",
    "A randomized controlled trial compared the two treatments.",
    "Hello! How can I help you with your slides today?",
    "Summarize the key findings of this study in three bullet points.",
    "The image shows a histology slide stained with hematoxylin and eosin.",
    "Results: the primary endpoint was met with a hazard ratio of 0.72.",
    "You are a helpful assistant for biomedical education.",
    "user assistant system model",
]

_CHATML_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Gemma has no system role: like the real template, the system text opens the first user turn.
_GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% if messages[0]['content'] is string %}{% set ns.system = messages[0]['content'] %}"
    "{% else %}{% for part in messages[0]['content'] %}"
    "{% if part['type'] == 'text' %}{% set ns.system = ns.system + part['text'] %}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% set ns.system = ns.system + '\n\n' %}"
    "{% set loop_messages = messages[1:] %}"
    "{% else %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{% if loop.first %}{{ ns.system }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] in ('image', 'image_url') %}{{ '<start_of_image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def _model_card(repo_id: str, pipeline_tag: str) -> str:
    return (
        "---\n"
        "library_name: transformers\n"
        f"pipeline_tag: {pipeline_tag}\n"
        "license: apache-2.0\n"
        "---\n\n"
        f"# {repo_id}\n\n"
        "Randomly initialised test model written by `studio_ai.devkit.tiny_models`. "
        "Its outputs are meaningless.\n"
    )


def _train_byte_level_bpe(special_tokens: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on a few sentences, wrapped for transformers (no specials set)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))  # noqa: S106 - a vocabulary token
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_SENTENCES, trainer=trainer)
    fast_cls: Any = PreTrainedTokenizerFast  # its __init__ is untyped
    wrapped: PreTrainedTokenizerFast = fast_cls(tokenizer_object=tokenizer)
    return wrapped


def _token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int):
        raise TypeError(f"{token} has no single id")
    return token_id


def create_tiny_llama(path: Path) -> Path:
    """Write a tiny Llama chat model (safetensors, tokenizer, ChatML template) into `path`."""
    import torch
    from tokenizers import processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]
    backend = _train_byte_level_bpe(specials, vocab_size=400).backend_tokenizer
    bos_id = backend.token_to_id("<s>")
    # Plain-text encoding starts with <s> like Llama's; the chat template writes bos itself
    # and apply_chat_template encodes without special tokens, so there is no double bos.
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    special_tokens = {
        "bos_token": "<s>",
        # Chat turns end with <|im_end|>: making it eos is what stops generation after a reply.
        "eos_token": "<|im_end|>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
    }
    fast_cls: Any = PreTrainedTokenizerFast  # its __init__ is untyped
    tokenizer: PreTrainedTokenizerFast = fast_cls(
        tokenizer_object=backend,
        **special_tokens,
        extra_special_tokens=["</s>", "<|im_start|>"],
        padding_side="left",
        model_max_length=2048,
        chat_template=_CHATML_TEMPLATE,
    )

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(_SEED)
    model = LlamaForCausalLM(config)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    (path / "README.md").write_text(_model_card(TINY_LLAMA, "text-generation"), encoding="utf-8")
    return path


def create_tiny_gemma3(path: Path) -> Path:
    """Write a tiny Gemma 3 image-text model (safetensors, tokenizer, processor) into `path`."""
    import torch
    from tokenizers import processors
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessorPil,
        Gemma3Processor,
        Gemma3TextConfig,
        PreTrainedTokenizerFast,
        SiglipVisionConfig,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    image_size = 32
    tokens_per_image = 4  # a square that divides the 4x4 patch grid
    specials = [
        "<pad>",
        "<eos>",
        "<bos>",
        "<unk>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<start_of_image>",
        "<end_of_image>",
        "<image_soft_token>",
    ]
    backend = _train_byte_level_bpe(specials, vocab_size=360).backend_tokenizer
    bos_id = backend.token_to_id("<bos>")
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos_id)]
    )
    special_tokens = {
        "bos_token": "<bos>",
        # Gemma chat turns end with <end_of_turn>, so that is the token generation stops on.
        "eos_token": "<end_of_turn>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
    }
    fast_cls: Any = PreTrainedTokenizerFast  # its __init__ is untyped
    tokenizer: PreTrainedTokenizerFast = fast_cls(
        tokenizer_object=backend,
        **special_tokens,
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
            "sot_token": "<start_of_turn>",
            "eot_token": "<end_of_turn>",
        },
        padding_side="left",
        model_max_length=2048,
        chat_template=_GEMMA_TEMPLATE,
    )

    vision_config = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=8,
        vision_use_head=False,
    )
    text_config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        sliding_window=64,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = Gemma3Config(
        text_config=text_config,
        vision_config=vision_config,
        mm_tokens_per_image=tokens_per_image,
        boi_token_index=_token_id(tokenizer, "<start_of_image>"),
        eoi_token_index=_token_id(tokenizer, "<end_of_image>"),
        image_token_index=_token_id(tokenizer, "<image_soft_token>"),
    )
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id

    image_processor = Gemma3ImageProcessorPil(
        size={"height": image_size, "width": image_size}, do_pan_and_scan=False
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=_GEMMA_TEMPLATE,
        image_seq_length=tokens_per_image,
    )

    torch.manual_seed(_SEED)
    model = Gemma3ForConditionalGeneration(config)
    model.save_pretrained(path, safe_serialization=True)
    processor.save_pretrained(path)
    (path / "README.md").write_text(
        _model_card(TINY_GEMMA3, "image-text-to-text"), encoding="utf-8"
    )
    return path


def create_all(out_dir: Path) -> dict[str, Path]:
    """Write both tiny models under `out_dir/<org>/<name>`; returns repo id -> folder."""
    out_dir = Path(out_dir)
    return {
        TINY_LLAMA: create_tiny_llama(out_dir / TINY_LLAMA),
        TINY_GEMMA3: create_tiny_gemma3(out_dir / TINY_GEMMA3),
    }


def main(argv: list[str] | None = None) -> None:
    """CLI: `python -m studio_ai.devkit.tiny_models OUT_DIR`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out_dir", type=Path, help="folder that receives <org>/<name> repos")
    args = parser.parse_args(argv)
    for repo_id, folder in create_all(args.out_dir).items():
        print(f"{repo_id}: {folder}")


if __name__ == "__main__":
    main()
