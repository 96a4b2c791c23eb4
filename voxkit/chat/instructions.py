"""Instruction data for the audio-chat model, built from voxkit's synthetic speech manifests.

Why synthetic instructions: the corpus knows exactly what every clip says, in which language, with
which words and how long it lasts, so questions about a clip ("how many words?", "which clip is
longer?") have answers right by construction, with no labelling and no model-made answers.
Text-only chats are mixed in so that the text decoder keeps its text skills while it learns to listen.

Everything is a pure function of (rows, kinds, seed): each example draws from its own generator
seeded by (seed, row id, repeat), so adding rows does not reshuffle the examples of the others.
Messages follow the OpenAI layout (``{"role": "user", "content": [{"type": "audio", "path": ...},
{"type": "text", "text": ...}]}``); :attr:`ChatExample.answer` is the assistant turn to learn.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from voxkit.audio.constants import ASR_SAMPLE_RATE
from voxkit.data.text import spoken_words
from voxkit.errors import DataError
from voxkit.fileio import atomic_write

FORMAT = "voxkit-chat-instructions/1"
ROLES = ("system", "user", "assistant")


@dataclass
class ChatExample:
    """One training conversation: the prompt ``messages`` and the assistant ``answer`` to learn.

    ``kind`` names the maker (the trainer encodes ``"transcribe"`` as a transcription request,
    ``[INST][BEGIN_AUDIO][AUDIO]...[/INST]lang:xx[TRANSCRIBE]``, with ``language``);
    ``source_ids`` are the manifest ids the example was made from, to trace and to dedupe.
    """

    kind: str
    messages: list[dict]
    answer: str
    language: str | None = None
    source_ids: list[str] = field(default_factory=list)


# Languages espeak-ng renders in the corpus (and a few more it covers), by manifest code.
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "pl": "Polish", "sv": "Swedish", "da": "Danish", "fi": "Finnish", "cs": "Czech", "ru": "Russian",
    "tr": "Turkish", "el": "Greek", "ro": "Romanian", "hu": "Hungarian",
}
_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
         "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORD = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh", "twelfth",
        "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth")


def number_words(n: int) -> str:
    """0..99 in English words ("twenty-one"): questions are spoken, so numbers are spelled out."""
    if not 0 <= n < 100:
        raise ValueError(f"number_words covers 0..99, got {n}")
    tens, ones = divmod(n, 10)
    return _ONES[n] if n < 20 else _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def ordinal(n: int) -> str:
    """1..99 as an English ordinal word ("third", "twenty-first")."""
    if not 1 <= n < 100:
        raise ValueError(f"ordinal covers 1..99, got {n}")
    tens, ones = divmod(n, 10)
    if n < 20:
        return _ORD[n - 1]
    return _TENS[tens][:-1] + "ieth" if ones == 0 else f"{_TENS[tens]}-{_ORD[ones - 1]}"


# ----------------------------------------------------------------------------------------------
# Kinds: each maker turns one row (plus the pool, for kinds that need a second row) into an example,
# or returns None when the row cannot support it (no language, no answer, too few words).

Maker = Callable[[dict, Sequence[dict], random.Random], ChatExample | None]


def _rid(row: dict) -> str:
    return str(row.get("id") or row["audio"])


def _words(row: dict) -> list[str]:
    """The spoken words, as the manifest's ``words`` list has them (edge punctuation stripped)."""
    listed = row.get("words")
    if isinstance(listed, list) and listed:
        return [" ".join(spoken_words(str(w["word"]))) or str(w["word"]) for w in listed]
    return spoken_words(str(row.get("text", "")))


def _ask(row: dict, question: str, rows: Sequence[dict] = ()) -> list[dict]:
    audio = [{"type": "audio", "path": str(r["audio"])} for r in (rows or [row])]
    return [{"role": "user", "content": [*audio, {"type": "text", "text": question}]}]


def _transcribe(row: dict, pool: Sequence[dict], rng: random.Random) -> ChatExample | None:
    """A plain transcription request: audio only; the language goes to the trainer's prompt."""
    if not row.get("language") or not str(row.get("text", "")).strip():
        return None
    messages = [{"role": "user", "content": [{"type": "audio", "path": str(row["audio"])}]}]
    return ChatExample("transcribe", messages, str(row["text"]), str(row["language"]), [_rid(row)])


def _chat_transcribe(row: dict, pool: Sequence[dict], rng: random.Random) -> ChatExample | None:
    q = rng.choice(("What does the speaker say?", "Transcribe this audio.", "Write down what you hear.",
                    "What is being said in this recording?", "Please transcribe the clip.", "What are the words spoken here?"))
    return ChatExample("chat_transcribe", _ask(row, q), str(row["text"]), source_ids=[_rid(row)])


def _language(row: dict, pool: Sequence[dict], rng: random.Random) -> ChatExample | None:
    name = LANGUAGE_NAMES.get(str(row.get("language")))
    if name is None:
        return None
    q = rng.choice(("Which language is spoken?", "What language is this?", "In which language does the speaker talk?",
                    "Name the language of this recording."))
    return ChatExample("language", _ask(row, q), name, source_ids=[_rid(row)])


def _count_words(row: dict, pool: Sequence[dict], rng: random.Random) -> ChatExample | None:
    words = _words(row)
    if not words:
        return None
    q = rng.choice(("How many words are spoken?", "How many words does the speaker say?", "Count the words in this clip."))
    return ChatExample("count_words", _ask(row, q), str(len(words)), source_ids=[_rid(row)])


def _nth_word(row: dict, pool: Sequence[dict], rng: random.Random) -> ChatExample | None:
    words = _words(row)[:99]
    if not words:
        return None
    n = rng.randint(1, len(words))
    q = rng.choice(("What is the {} word?", "Which word is spoken {}?", "Tell me the {} word the speaker says.")).format(ordinal(n))
    return ChatExample("nth_word", _ask(row, q), words[n - 1], source_ids=[_rid(row)])


def _two_audios(row: dict, pool: Sequence[dict], rng: random.Random) -> ChatExample | None:
    """Two clips in one turn, so the model learns to keep several audios apart."""
    others = [r for r in (pool[rng.randrange(len(pool))] for _ in range(8)) if _rid(r) != _rid(row)] if pool else []
    if not others:
        return None
    pair = [row, others[0]] if rng.random() < 0.5 else [others[0], row]
    d = [float(r.get("duration") or 0.0) for r in pair]
    ids = [_rid(r) for r in pair]
    if min(d) > 0 and abs(d[0] - d[1]) >= max(0.3, 0.15 * max(d)) and rng.random() < 0.5:  # clearly different lengths
        q = rng.choice(("Which clip is longer, the first or the second?", "Which recording lasts longer, the first or the second?"))
        return ChatExample("two_audios", _ask(row, q, pair), "The first." if d[0] > d[1] else "The second.", source_ids=ids)
    k = rng.randrange(2)
    words = _words(pair[k])
    if not words:
        return None
    q = f"What is the last word of the {('first', 'second')[k]} clip?"
    return ChatExample("two_audios", _ask(row, q, pair), words[-1], source_ids=ids)


def _spoken_question(row: dict, pool: Sequence[dict], rng: random.Random) -> ChatExample | None:
    """The clip itself asks (rows from :func:`render_spoken_questions` carry the ``answer``)."""
    if not isinstance(row.get("answer"), str) or not row["answer"]:
        return None
    q = rng.choice(("Answer the question in the audio.", "Please answer the spoken question.", "Listen and answer the question.",
                    "Reply to what is asked in the recording."))
    return ChatExample("spoken_question", _ask(row, q), row["answer"], source_ids=[_rid(row)])


def _text_only(row: dict, pool: Sequence[dict], rng: random.Random) -> ChatExample | None:
    """No audio at all: the corpus sentence as text, single questions or a two-turn chat whose second
    answer depends on the first (so the model reads its own earlier reply)."""
    s = str(row.get("text", "")).strip()
    words = spoken_words(s)
    if not words:
        return None
    turns: list[tuple[str, str]] = rng.choice([
        [(f"Repeat exactly: {s}", s)],
        [(f"How many words are in: {s}", str(len(words)))],
        [(f"What is the first word of: {s}", words[0])],
        [(f"Repeat exactly: {s}", s), ("Now write it again in capital letters.", s.upper())],
        [(f"How many words are in: {s}", str(len(words))), ("Add two to that number.", str(len(words) + 2))],
        [(f"What is the first word of: {s}", words[0]),
         ("How many letters does that word have?", str(sum(c.isalpha() for c in words[0])))],
    ])
    messages: list[dict] = []
    for q, a in turns[:-1]:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    messages.append({"role": "user", "content": turns[-1][0]})
    return ChatExample("text_only", messages, turns[-1][1], source_ids=[_rid(row)])


KINDS: dict[str, Maker] = {
    "transcribe": _transcribe, "chat_transcribe": _chat_transcribe, "language": _language, "count_words": _count_words,
    "nth_word": _nth_word, "two_audios": _two_audios, "spoken_question": _spoken_question, "text_only": _text_only,
}
# spoken_question fits only rows that carry an ``answer``; its large weight makes it the usual use of
# those rows without changing the mix drawn for ordinary rows (a kind that does not fit is skipped).
DEFAULT_KINDS: dict[str, float] = {
    "transcribe": 3.0, "chat_transcribe": 1.5, "language": 0.5, "count_words": 1.0, "nth_word": 1.0,
    "two_audios": 1.0, "spoken_question": 20.0, "text_only": 1.0,
}


def build_examples(rows: Sequence[dict], *, kinds: Mapping[str, float] | None = None, seed: int = 0, per_row: int = 1) -> list[ChatExample]:
    """``per_row`` examples for every row, the kind drawn by weight (``kinds``, default :data:`DEFAULT_KINDS`).

    A kind a row cannot support (``spoken_question`` without an ``answer``, ``language`` for an
    unnamed code) is dropped for that draw and another is drawn, so the mix stays close to the
    weights; a row no requested kind fits yields nothing. ``two_audios`` pairs rows of ``rows``
    only, so a held-out split never hears a training clip.
    """
    weights = dict(DEFAULT_KINDS if kinds is None else kinds)
    unknown = sorted(set(weights) - set(KINDS))
    if unknown:
        raise DataError(f"unknown instruction kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    if any(not w >= 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
        raise DataError(f"instruction kind weights must be >= 0 with one above 0, got {weights}")
    if per_row < 1:
        raise DataError(f"per_row must be at least 1, got {per_row}")
    examples = []
    for row in rows:
        for k in range(per_row):
            rng = random.Random(f"chat:{seed}:{_rid(row)}:{k}")
            names = [n for n, w in weights.items() if w > 0]
            while names:
                name = rng.choices(names, [weights[n] for n in names])[0]
                example = KINDS[name](row, rows, rng)
                if example is not None:
                    examples.append(example)
                    break
                names.remove(name)
    return examples


def split_by_speaker(
    rows: Sequence[dict], held_out_fraction: float, seed: int = 0, *, key: Callable[[dict], str] | None = None
) -> tuple[list[dict], list[dict]]:
    """(train rows, held-out rows) with no speaker in both, so held-out questions use unheard voices.

    ``held_out_fraction`` of the speakers (``key``, default the ``speaker`` field) are held out,
    at least one when there are two or more and never all of them. Rows without a speaker stay in
    train: nothing proves their voice is new.
    """
    if not 0.0 <= held_out_fraction < 1.0:
        raise DataError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    name = key or (lambda r: str(r.get("speaker") or ""))
    speakers = sorted({name(r) for r in rows} - {""})
    random.Random(f"chat-split:{seed}").shuffle(speakers)
    n = round(held_out_fraction * len(speakers))
    if held_out_fraction > 0 and len(speakers) >= 2:
        n = min(max(n, 1), len(speakers) - 1)
    held = set(speakers[:n])
    return [r for r in rows if name(r) not in held], [r for r in rows if name(r) in held]


# ----------------------------------------------------------------------------------------------
# JSONL files


def _map_audio(messages: list[dict], fn: Callable[[str], str]) -> list[dict]:
    def part(p: object) -> object:
        return {**p, "path": fn(p["path"])} if isinstance(p, dict) and p.get("type") == "audio" else p

    return [{**m, "content": [part(p) for p in m["content"]]} if isinstance(m.get("content"), list) else m for m in messages]


def write_examples(path: str | os.PathLike, examples: Sequence[ChatExample], *, audio_root: str | None = None) -> int:
    """Write a header line then one example per line, atomically; returns the number written.

    Audio paths are stored relative to the file's folder (a data set moves with its audio) unless
    they are on another drive. Relative paths in ``examples`` are taken relative to ``audio_root``
    (default: the current folder), like any relative path in Python.
    """
    for i, e in enumerate(examples):  # refuse here what read_examples would refuse later
        reason = _problem(asdict(e))
        if reason:
            raise DataError(f"example {i} ({e.kind}): {reason}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    root = os.path.abspath(audio_root or os.getcwd())

    def rel(p: str) -> str:
        full = os.path.normpath(os.path.join(root, p))
        try:
            return os.path.relpath(full, folder)
        except ValueError:  # another drive (Windows)
            return full

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            header = {"format": FORMAT, "examples": len(examples), "kinds": dict(sorted(Counter(e.kind for e in examples).items()))}
            f.write(json.dumps(header) + "\n")
            for e in examples:
                f.write(json.dumps({**asdict(e), "messages": _map_audio(e.messages, rel)}, ensure_ascii=False) + "\n")

    atomic_write(path, write)
    return len(examples)


def _problem(d: object) -> str | None:
    """Why a decoded line is no example (None: fine)."""
    if not isinstance(d, dict):
        return "not a JSON object"
    if not isinstance(d.get("kind"), str) or not d["kind"] or not isinstance(d.get("answer"), str):
        return "kind and answer must be strings"
    if d.get("language") is not None and not isinstance(d["language"], str):
        return "language must be a string or null"
    if not isinstance(d.get("source_ids", []), list) or not all(isinstance(s, str) for s in d.get("source_ids", [])):
        return "source_ids must be a list of strings"
    messages = d.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    expected = "user"
    for j, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return f"message {j} needs a role among {', '.join(ROLES)}"
        if m["role"] != "system":
            if m["role"] != expected:
                return f"message {j}: expected a {expected} message (roles alternate user/assistant, starting with user)"
            expected = "assistant" if expected == "user" else "user"
        content = m.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or not content:
            return f"message {j}: content must be a string or a non-empty list of parts"
        for p in content:
            audio = isinstance(p, dict) and p.get("type") == "audio" and isinstance(p.get("path"), str) and p["path"] != ""
            if not (audio or isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)):
                return f"message {j}: parts must be {{type: text, text}} or {{type: audio, path}}"
            if audio and m["role"] != "user":
                return f"message {j}: audio belongs in user messages only"
    if messages[-1]["role"] != "user":
        return "the last message must be the user's (the answer follows it)"
    return None


def read_examples(path: str | os.PathLike) -> list[ChatExample]:
    """Read :func:`write_examples`' file, audio paths made absolute; a bad line raises DataError naming it."""
    name = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"instruction file not found: {name}")
    folder = os.path.dirname(os.path.abspath(path))
    examples: list[ChatExample] = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                d = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise DataError(f"{name}:{n}: not UTF-8 text" + (" (not a voxkit instruction file)" if n == 1 else "")) from None
            except json.JSONDecodeError as err:
                if not raw.strip() and n > 1:
                    continue
                raise DataError(f"{name}:{n}: invalid JSON: {err.msg}") from None
            if n == 1:
                fmt = d.get("format") if isinstance(d, dict) else None
                if fmt != FORMAT:
                    raise DataError(f"{name}:1: not a voxkit instruction file (format {fmt!r}, expected {FORMAT!r})")
                continue
            reason = _problem(d)
            if reason:
                raise DataError(f"{name}:{n}: {reason}")
            messages = _map_audio(d["messages"], lambda p: p if os.path.isabs(p) else os.path.normpath(os.path.join(folder, p)))
            examples.append(ChatExample(d["kind"], messages, d["answer"], d.get("language"), list(d.get("source_ids", []))))
    if not examples and not os.path.getsize(path):
        raise DataError(f"{name}: empty file (expected a {FORMAT} header line)")
    return examples


# ----------------------------------------------------------------------------------------------
# Spoken questions: clips that themselves ask something with one right answer

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
           "December")
_OPPOSITES = (("hot", "cold"), ("big", "small"), ("up", "down"), ("day", "night"), ("fast", "slow"), ("happy", "sad"),
              ("open", "closed"), ("light", "dark"), ("old", "young"), ("early", "late"), ("full", "empty"), ("hard", "soft"),
              ("wet", "dry"), ("loud", "quiet"), ("rich", "poor"), ("strong", "weak"), ("thick", "thin"), ("high", "low"),
              ("left", "right"), ("inside", "outside"), ("win", "lose"), ("buy", "sell"), ("push", "pull"), ("true", "false"))
_FACTS = (("How many days are in a week?", "7"), ("How many months are in a year?", "12"), ("How many hours are in a day?", "24"),
          ("How many minutes are in an hour?", "60"), ("How many seconds are in a minute?", "60"),
          ("How many legs does a spider have?", "8"), ("How many sides does a triangle have?", "3"),
          ("How many sides does a square have?", "4"), ("How many sides does a hexagon have?", "6"),
          ("How many wheels does a bicycle have?", "2"), ("How many letters are in the English alphabet?", "26"),
          ("How many legs does a dog have?", "4"), ("What is the capital of France?", "Paris"),
          ("What is the capital of Italy?", "Rome"), ("What is the capital of Japan?", "Tokyo"),
          ("What colour is the sky on a clear day?", "blue"), ("What is frozen water called?", "ice"))
_MIXES = (("blue", "yellow", "green"), ("red", "yellow", "orange"), ("red", "blue", "purple"), ("red", "white", "pink"),
          ("black", "white", "grey"))
_SPELL = ("cat", "house", "garden", "river", "apple", "window", "music", "yellow", "bread", "elephant", "tree", "computer", "orange",
          "mountain", "chair", "water", "table", "school", "friend", "summer")


def question_families() -> dict[str, tuple[tuple[str, str], ...]]:
    """(spoken English question, answer) pairs by topic; rendering takes topics in turn, so a small
    batch is not all arithmetic (the largest family by far).

    One answer convention: numbers as digits ("12"), everything else as a word ("Wednesday",
    "cold"). Questions spell numbers out, since they are heard rather than read.
    """
    w = number_words
    families = {
        "plus": [(f"What is {w(a)} plus {w(b)}?", str(a + b)) for a in range(13) for b in range(13)],
        "minus": [(f"What is {w(a)} minus {w(b)}?", str(a - b)) for a in range(2, 16) for b in range(1, a + 1)],
        "times": [(f"What is {w(a)} times {w(b)}?", str(a * b)) for a in range(2, 10) for b in range(2, 10)],
        "counting": [(f"What number comes after {w(n)}?", str(n + 1)) for n in range(60)]
        + [(f"What number comes before {w(n)}?", str(n - 1)) for n in range(1, 60)],
        "double": [(f"What is double {w(n)}?", str(2 * n)) for n in range(1, 26)]
        + [(f"What is half of {w(2 * n)}?", str(n)) for n in range(1, 26)],
        "days": [(f"What comes after {d}?", _DAYS[(i + 1) % 7]) for i, d in enumerate(_DAYS)]
        + [(f"What day comes before {d}?", _DAYS[i - 1]) for i, d in enumerate(_DAYS)],
        "months": [(f"What month comes after {m}?", _MONTHS[(i + 1) % 12]) for i, m in enumerate(_MONTHS)]
        + [(f"What month comes before {m}?", _MONTHS[i - 1]) for i, m in enumerate(_MONTHS)],
        "opposites": [(f"What is the opposite of {a}?", b) for x, y in _OPPOSITES for a, b in ((x, y), (y, x))],
        "colours": [(f"What colour do you get when you mix {a} and {b}?", c) for x, y, c in _MIXES for a, b in ((x, y), (y, x))],
        "spelling": [(f"How many letters are in the word {s}?", str(len(s))) for s in _SPELL],
        "facts": list(_FACTS),
    }
    return {k: tuple(v) for k, v in families.items()}


def question_bank() -> tuple[tuple[str, str], ...]:
    """Every (question, answer) of :func:`question_families`, sorted and distinct."""
    return tuple(sorted({q for family in question_families().values() for q in family}))


def render_spoken_questions(out_dir: str | os.PathLike, count: int, *, seed: int, voices: Sequence | None = None) -> list[dict]:
    """Render ``count`` questions of :func:`question_bank` with espeak-ng into ``out_dir``.

    Writes ``audio/sq-NNNNNN.flac`` (16 kHz) and ``questions.jsonl`` (manifest rows, audio relative)
    and returns the rows with absolute audio paths and an ``answer`` field. Voices (espeak
    :class:`~voxkit.data.espeak.Voice`) default to a seeded pool of English speakers from the
    corpus' variants; the ``speaker`` field names them so :func:`split_by_speaker` can hold voices out.
    Questions cycle when ``count`` exceeds the bank (in other voices).
    """
    from voxkit.audio.write import save_audio
    from voxkit.data.espeak import Voice
    from voxkit.data.manifest import write_manifest
    from voxkit.data.synth import render
    from voxkit.data.voices import PITCHES, RANGES, RATES, VARIANTS, speaker_id

    if count < 1:
        raise DataError(f"count must be at least 1, got {count}")
    rng = random.Random(f"spoken-questions:{seed}")
    families = [list(f) for _, f in sorted(question_families().items())]
    for f in families:
        rng.shuffle(f)
    rng.shuffle(families)
    bank = [f[k] for k in range(max(map(len, families))) for f in families if k < len(f)]  # topics in turn
    pool = list(voices) if voices else [
        Voice("en-us", rng.choice(VARIANTS), pitch=rng.choice(PITCHES), range=rng.choice(RANGES), rate=rng.choice(RATES))
        for _ in range(max(4, min(64, count // 4)))
    ]
    out = os.path.abspath(out_dir)
    rows = []
    for i in range(count):
        text, answer = bank[i % len(bank)]
        first = rng.randrange(len(pool))
        for j in range(len(pool)):  # a voice whose rendering cannot be aligned: the next one
            voice = pool[(first + j) % len(pool)]
            result = render(text, voice)
            if result is not None:
                break
        else:
            raise DataError(f"espeak-ng could not render {text!r} in any of the {len(pool)} voices")
        audio, words = result
        path, sr = os.path.join(out, "audio", f"sq-{i:06d}.flac"), ASR_SAMPLE_RATE
        save_audio(path, audio[sr], sr)
        rows.append({"audio": path, "text": text, "answer": answer, "language": "en", "speaker": speaker_id(voice, "en"),
                     "duration": round(audio[sr].size / sr, 3), "sample_rate": sr, "words": words, "id": f"sq-{seed}-{i:06d}"})
    write_manifest(os.path.join(out, "questions.jsonl"), rows, relative_to=out)
    return rows
