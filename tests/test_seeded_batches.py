"""A seeded request samples the same tokens alone or in any batch (each stream draws from its own
generator), for the token generator and for audio chat; a seeded batch of one and greedy decoding
draw what they drew before, so single-request and TTS outputs keep their seeds."""

from __future__ import annotations

import pytest
import torch

from test_chat_api import audio_message, clip, make_chat
from test_generate import PROMPTS, tiny_model
from voxkit.lm.generate import Generator
from voxkit.lm.sampling import SamplingConfig, row_generators, sample_next

SAMPLINGS = [
    SamplingConfig(temperature=1.5),
    SamplingConfig(temperature=1.5, top_k=20),
    SamplingConfig(temperature=1.5, top_p=0.95),
    SamplingConfig(temperature=1.5, top_k=20, top_p=0.9),
]


def _logits(rows: int, vocab: int = 3000) -> torch.Tensor:
    return 2.0 * torch.randn(rows, vocab, generator=torch.Generator().manual_seed(1))  # [B, V]


@pytest.mark.parametrize("config", SAMPLINGS, ids=str)
def test_each_row_draws_from_its_own_generator(config: SamplingConfig) -> None:
    """Row i of a draw with one generator per row is the draw of row i alone with the same seed,
    step after step; one generator for the batch gives another sequence of rows."""
    logits = _logits(5)
    per_row, alone = row_generators(11, 5), [torch.Generator().manual_seed(11) for _ in range(5)]
    for _ in range(4):  # each generator advances by one number a step
        batch = sample_next(logits, config, per_row)  # [5]
        singles = torch.cat([sample_next(logits[i : i + 1], config, alone[i]) for i in range(5)])  # [5]
        assert torch.equal(batch, singles)
    shared = sample_next(logits, config, torch.Generator().manual_seed(11))  # [5]
    assert not torch.equal(shared, sample_next(logits, config, row_generators(11, 5)))


def test_a_batch_of_one_draws_as_one_shared_generator_did() -> None:
    """One stream seeded s (a `voxkit generate` prompt, a TTS utterance) keeps its seeded output."""
    logits = _logits(1)
    config = SamplingConfig(temperature=0.9, top_p=0.95)
    shared, own = torch.Generator().manual_seed(3), row_generators(3, 1)
    for _ in range(6):
        assert torch.equal(sample_next(logits, config, shared), sample_next(logits, config, own))


def test_one_generator_per_row_or_a_clear_error() -> None:
    with pytest.raises(ValueError, match="2 generators for 3 rows"):
        sample_next(_logits(3), SamplingConfig(temperature=1.0), row_generators(0, 2))


@pytest.mark.parametrize("config", SAMPLINGS[::3], ids=str)
def test_a_seeded_prompt_generates_the_same_alone_or_batched(config: SamplingConfig) -> None:
    gen = Generator(tiny_model(), config)
    alone = [gen.generate([p], 16, seed=5)[0] for p in PROMPTS]
    assert gen.generate(PROMPTS, 16, seed=5) == alone
    assert gen.generate(PROMPTS[::-1], 16, seed=5) == alone[::-1]
    streamed: list[list[int]] = [[] for _ in PROMPTS]
    for step in gen.stream(PROMPTS, 16, seed=5):
        for row, token in zip(streamed, step, strict=True):
            if token is not None:
                row.append(token)
    assert streamed == alone
    assert len({tuple(a) for a in alone}) == len(alone)  # the rows are not one repeated sequence
    greedy = Generator(gen.model)  # draws nothing: the seed changes nothing
    assert greedy.generate(PROMPTS, 8, seed=5) == greedy.generate(PROMPTS, 8) == [greedy.generate([p], 8)[0] for p in PROMPTS]


def test_a_seeded_conversation_replies_the_same_alone_or_batched() -> None:
    """What a vLLM user expects of a seed: the reply does not depend on the rest of the batch."""
    chat = make_chat(3)
    conversations = [
        audio_message(clip(0.3, 1), "What is said?"),
        [{"role": "user", "content": "Hello there"}],
        audio_message(clip(0.6, 2), "A longer second question?"),
    ]
    options = {"max_new_tokens": 12, "temperature": 1.0, "top_p": 0.95, "seed": 21}
    alone = [chat.generate(c, **options) for c in conversations]
    assert chat.generate(conversations, **options) == alone
    assert chat.generate(conversations[::-1], **options) == alone[::-1]
    assert "".join(chat.stream(conversations[1], **options)) == alone[1]
    assert len(set(alone)) == len(alone)


def test_each_prompt_of_a_batch_may_bring_its_own_seed() -> None:
    """vLLM takes a seed per request: a list of seeds, one per prompt or conversation, gives each
    what it gets alone with its seed; a list of the wrong length is one line."""
    from voxkit.errors import OptionError

    gen = Generator(tiny_model(), SAMPLINGS[0])
    seeds = [5, 9, 13][: len(PROMPTS)]
    alone = [gen.generate([p], 12, seed=s)[0] for p, s in zip(PROMPTS, seeds, strict=True)]
    assert gen.generate(PROMPTS, 12, seed=seeds) == alone
    with pytest.raises(OptionError, match="seeds for"):
        gen.generate(PROMPTS, 12, seed=seeds[:-1])
    chat = make_chat(3)
    conversations = [[{"role": "user", "content": "Hello there"}], audio_message(clip(0.3, 1), "What is said?")]
    options = {"max_new_tokens": 10, "temperature": 1.0}
    replies = [chat.generate(c, seed=s, **options) for c, s in zip(conversations, (4, 40), strict=True)]
    assert chat.generate(conversations, seed=[4, 40], **options) == replies
    with pytest.raises(OptionError, match="1 seeds for 2 prompts"):
        chat.generate(conversations, seed=[4], **options)
    with pytest.raises(OptionError, match="seed must be a whole number"):
        chat.generate(conversations, seed=[4, -1], **options)
