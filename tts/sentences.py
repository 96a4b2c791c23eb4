"""Where a text is cut into the pieces the TTS generates one after another.

Why not :func:`voxkit.data.text.split_sentences`: the corpus builder's splitter cuts at every ". "
before a capital, so "Mr. Smith" or "U. S." fall apart (each piece generated alone, after a pause),
and it drops a closing quote ('“Why?” She asked.' gives '“Why?'). Its output has to stay exactly as
it is (every training plan is built from it), so the TTS side has its own splitter with the same
rule — . ! ? … before a capitalised word — except that:

- a known abbreviation that introduces something (titles: Mr., Dr., Mme, Sra., Hr.; e.g., z. B.)
  or a single-letter initial ("J. K. Rowling") does not end a sentence; abbreviations that may end
  one ("etc.", "p.m.", "U.S.") do, before a capital, as any word does;
- closing quotes and brackets stay with their sentence;
- the CJK full stops 。！？ end a sentence without a space.

A piece that is still too long is wrapped (:func:`wrap`) at clause marks, then at spaces.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_OPENERS = "\"'«“„‘([¿¡"
_CLOSERS = "\"'»”’)]"
# group 1: the marks, group 2: closing quotes/brackets (French sets » after a space), group 3: the first
# letter or digit of what follows; group 4: a CJK full stop (with its closing brackets), which needs no space
_END = re.compile(r"([.!?…]+)((?:[" + re.escape(_CLOSERS) + r"]| »)*)\s+(?=[" + re.escape(_OPENERS) + r"]*(\w))"
                  r"|([。！？]+[」』”’）)]*)")
_CLAUSE = re.compile(r"(?<=[,;:])\s+")

# Abbreviations (lower case, without their last period) that come before what they name, so a capital
# after them starts a name, not a sentence. Abbreviations that end sentences as often ("etc.",
# "usw.", "p.m.", "U.S.", "Jr.", "Inc.") are not here: before a capital they end the sentence.
_EVERYWHERE = frozenset({"mr", "mrs", "ms", "mx", "dr", "prof", "st", "e.g", "i.e", "cf", "vs"})
_BEFORE_A_NAME: dict[str, frozenset[str]] = {
    "en": frozenset({"messrs", "mt", "rev", "hon", "gen", "col", "capt", "lt", "sgt", "sen", "rep", "gov", "pres", "approx",
                     "dept", "fig", "viz"}),
    "fr": frozenset({"mm", "mme", "mmes", "mlle", "mlles", "pr", "ste", "p.ex", "env"}),
    "es": frozenset({"sr", "sra", "srta", "sres", "sras", "dra", "lic", "ing", "ud", "uds", "vd", "vds", "dña", "ee", "p.ej",
                     "aprox"}),
    "de": frozenset({"hr", "hrn", "fr", "frl", "z.b", "d.h", "bzw", "ca", "vgl", "nr", "evtl", "ggf", "inkl", "sog"}),
}
# ... and those that come before a number ("No. 5"): before a digit they do not end the sentence either
_BEFORE_A_NUMBER = frozenset({"no", "nos", "nr", "núm", "vol", "pp", "ch", "chap", "art", "fig", "sec", "tel", "op", "ca"})


def split_sentences(text: str, lang: str, *, digits_start: bool = False) -> list[str]:
    """``text`` cut into sentences (see the module's rules); ``lang`` picks the abbreviations.

    ``digits_start``: a digit after . ! ? also starts a sentence ("It ended. 52 people came."), except
    after a number ("am 3. Mai": whether "3." ends a sentence is for the number reader to decide).
    Used before numbers are read aloud, when the reader writes "fifty-two" in lower case.
    """
    known = _EVERYWHERE | _BEFORE_A_NAME.get(lang, frozenset())
    out: list[str] = []
    start = 0
    for m in _END.finditer(text):
        if m.group(4) is None and not _ends_sentence(text, m, known, digits_start):
            continue
        piece = text[start : m.end()].strip()
        if piece:
            out.append(piece)
        start = m.end()
    rest = text[start:].strip()
    if rest:
        out.append(rest)
    return out


def _ends_sentence(text: str, m: re.Match[str], known: frozenset[str], digits_start: bool) -> bool:
    """Whether the marks matched by ``m`` end a sentence (what follows is decided by its first character)."""
    first = m.group(3)
    if first.isdigit():
        if not digits_start:
            return False
    elif not first.isupper():
        return False  # a lower-case continuation ("etc. and", '"Why?" she asked')
    if m.group(1) != "." or m.group(2):
        return True  # ! ? … and closed quotes end a sentence whatever came before
    begin = m.start()
    while begin > 0 and not text[begin - 1].isspace():  # back to the start of the word before the period
        begin -= 1
    word = text[begin : m.start()].lstrip(_OPENERS)
    key = word.lower()
    if len(word) == 1 and word.isalpha():
        return False  # an initial: "J. K. Rowling", "z. B."
    if digits_start and word.isdigit():
        return False  # "am 3. Mai" or "bis 3. Dann": the number reader knows which
    return key not in known and not (first.isdigit() and key in _BEFORE_A_NUMBER)


def wrap(sentence: str, fits: Callable[[str], bool]) -> list[str]:
    """Cut ``sentence`` into pieces for which ``fits`` holds: whole clauses (cut after , ; :) where
    they fit, else words, else — for a run without spaces longer than a piece (a URL, text in a
    script written without spaces) — its longest prefix that fits. ``fits`` must hold for shorter
    text whenever it holds for longer; a single character is taken even where it does not fit,
    so the caller checks the pieces it needs to."""
    if fits(sentence):
        return [sentence]
    pieces: list[str] = []
    current = ""
    for clause in _CLAUSE.split(sentence):
        parts = [clause] if fits(clause) else clause.split()
        for part in parts:
            while not fits(part):
                if current:
                    pieces.append(current)
                    current = ""
                cut = _longest_prefix(part, fits)
                pieces.append(part[:cut])
                part = part[cut:]
            if not part:
                continue
            joined = f"{current} {part}" if current else part
            if current and not fits(joined):
                pieces.append(current)
                current = part
            else:
                current = joined
    if current:
        pieces.append(current)
    return pieces


def _longest_prefix(run: str, fits: Callable[[str], bool]) -> int:
    """The length of the longest prefix of ``run`` that fits (at least 1), by bisection."""
    low, high = 1, len(run)
    while low < high:
        mid = (low + high + 1) // 2
        if fits(run[:mid]):
            low = mid
        else:
            high = mid - 1
    return low
