"""Where a text is cut into the pieces the TTS generates one after another.

Why not :func:`voxkit.data.text.split_sentences`: the corpus builder's splitter cuts at every ". "
before a capital, so "Mr. Smith" or "U. S." fall apart (each piece generated alone, after a pause),
and it drops a closing quote ('“Why?” She asked.' gives '“Why?'). Its output has to stay exactly as
it is (every training plan is built from it), so the TTS side has its own splitter with the same
rule — . ! ? … before a capitalised word — except that:

- a known abbreviation that introduces something (titles: Mr., Dr., Mme, Sra., Hr.; e.g., z. B.)
  does not end a sentence; other abbreviations ("etc.", "Inc.", "usw.") do, before a capital, as
  any word does;
- an abbreviation made of single letters — an initialism ("U.S.", "a.m.", "Ph.D.", "EE. UU.") or one
  letter ("J.", "B.") — is ambiguous before a capital ("the U.S. Army" / "to the U.S. It was"), so it
  ends a sentence only before a word that typically starts one (a pronoun, an article, "Then": see
  :func:`_letters_end_sentence`);
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
# "usw.", "Jr.", "Inc.") are not here: before a capital they end the sentence. Spaced forms ("z. B.",
# "e. g.") are looked up without their spaces.
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


def _words(spaced: str) -> frozenset[str]:
    """A word list written as one string: long lists stay readable at a glance."""
    return frozenset(spaced.split())


# Words that typically start a sentence (lower case): pronouns, articles, demonstratives, common
# conjunctions and adverbs. After an abbreviation of single letters ("U.S.", "p.m.", "B.") a capital
# is a sentence start only when it begins one of these ("the U.S. The ..." / "the U.S. Army"), the
# heuristic well-kept splitters use; words that are also common surnames ("May", "Will", "Young")
# are left out. A language without a list keeps the simpler rule (see _letters_end_sentence).
_STARTERS: dict[str, frozenset[str]] = {
    "en": _words(
        "i you he she it we they my our your his her its their this that these those there here the a an "
        "then but and so or yet also however thus still now later today tomorrow yesterday meanwhile after before "
        "when while if as at in on for by from since although though because once what who why how where which "
        "no yes please let all some many most both each every nobody everyone everybody nothing everything "
        "is are was were do does did can could would should shall must have has had am "
        "not even last next several few more other such one two three four five six seven eight nine ten "
        "mr mrs ms dr prof st"),
    "fr": _words(
        "je tu il elle on nous vous ils elles ce cet cette ces cela ça ceci c l j qu d n s le la les un une des du au aux "
        "mon ma mes ton ta tes son sa ses notre nos votre vos leur leurs mais et ou donc or car puis alors ensuite enfin "
        "aujourd demain hier maintenant après avant depuis pendant quand lorsque si comme en dans à pour par sur "
        "ainsi cependant pourtant voici voilà oui non personne rien tout tous toutes chaque que qui quoi pourquoi comment où "
        "quelques plusieurs beaucoup est sont était étaient peut"),
    "es": _words(
        "yo tú él ella ello nosotros nosotras vosotros ellos ellas usted ustedes el la lo los las un una unos unas "
        "mi mis tu tus su sus nuestro nuestra nuestros nuestras este esta esto estos estas ese esa eso esos esas aquel "
        "aquella pero y e o u entonces luego después antes así también sin además hoy mañana ayer ahora aquí allí "
        "cuando si como en con por para desde hay no sí nadie nada todo todos cada qué quién cómo dónde cuándo "
        "muchos muchas algunos algunas varios varias es son era eran está están fue"),
    "de": _words(
        "ich du er sie es wir ihr man der die das den dem des ein eine einen einem einer mein meine sein seine "
        "unser unsere dies diese dieser dieses jener dann danach aber und oder doch denn so da also auch noch nun jetzt "
        "heute morgen gestern hier dort wenn als weil ob im in am an auf mit nach bei von vor seit für was wer wie wo "
        "warum ja nein nicht niemand nichts alle jeder jede jedes ihre deine eure viele einige ist sind war waren hat haben"),
}
# Determiners before a single letter make the letter a word ("I got a B.", "une note B."), not an initial
_DETERMINERS: dict[str, frozenset[str]] = {
    "en": frozenset({"a", "an", "the"}),
    "fr": frozenset({"un", "une", "le", "la", "du", "des"}),
    "es": frozenset({"un", "una", "el", "la", "lo"}),
    "de": frozenset({"ein", "eine", "einen", "einem", "einer", "der", "die", "das", "den", "dem", "des"}),
}
# a.m. and p.m. end what they say: before a capital they end a sentence, as any word does (rarely
# "10 a.m. Eastern")
_TIMES_OF_DAY = frozenset({"a.m", "p.m"})
_LETTERS = re.compile(r"[^\W\d_]+")
_INITIALISM = re.compile(r"[^\W\d_]{1,2}(?:\.[^\W\d_]{1,2})+")  # U.S, a.m, Ph.D, EE.UU (without the last period)
_SPACED_PART = re.compile(r"([^\W\d_])\1?\.")  # one letter of a spaced initialism ("U." of "U. S."), or a doubled one ("EE.")


def split_sentences(text: str, lang: str, *, digits_start: bool = False) -> list[str]:
    """``text`` cut into sentences (see the module's rules); ``lang`` picks the abbreviations and the
    words that start sentences.

    ``digits_start``: a digit after . ! ? also starts a sentence ("It ended. 52 people came."), except
    after a number ("am 3. Mai": whether "3." ends a sentence is for the number reader to decide) or an
    abbreviation of single letters ("U.S. 101"). Used before numbers are read aloud, when the reader
    writes "fifty-two" in lower case.
    """
    known = _EVERYWHERE | _BEFORE_A_NAME.get(lang, frozenset())
    out: list[str] = []
    start = 0
    for m in _END.finditer(text):
        if m.group(4) is None and not _ends_sentence(text, m, lang, known, digits_start):
            continue
        piece = text[start : m.end()].strip()
        if piece:
            out.append(piece)
        start = m.end()
    rest = text[start:].strip()
    if rest:
        out.append(rest)
    return out


def _ends_sentence(text: str, m: re.Match[str], lang: str, known: frozenset[str], digits_start: bool) -> bool:
    """Whether the marks matched by ``m`` end a sentence (what follows is decided by its first character)."""
    first = m.group(3)
    if first.isdigit():
        if not digits_start:
            return False
    elif not first.isupper():
        return False  # a lower-case continuation ("etc. and", '"Why?" she asked')
    if m.group(1) != "." or m.group(2):
        return True  # ! ? … and closed quotes end a sentence whatever came before
    begin = _word_start(text, m.start())
    word = text[begin : m.start()].lstrip(_OPENERS)
    parts = _spaced_parts(text, begin)  # "z." of "z. B.", "U." of "U. S."
    key = word.lower()
    spelled = ".".join([*parts, key])
    if key in known or spelled in known:
        return False
    if digits_start and word.isdigit():
        return False  # "am 3. Mai" or "bis 3. Dann": the number reader knows which
    if first.isdigit() and key in _BEFORE_A_NUMBER:
        return False
    if spelled in _TIMES_OF_DAY:
        return True  # "at 5 p.m. Coffee was served": a time ends what it says, as any word
    spaced = bool(parts) and _SPACED_PART.fullmatch(word + ".") is not None
    single = len(word) == 1 and word.isalpha()
    if not (single or spaced or _INITIALISM.fullmatch(word)):
        return True
    if lang not in _STARTERS:
        return not single  # no list of starters: the simpler rule, an initialism ends a sentence, a letter does not
    previous = "" if parts else _previous_word(text, begin)
    return _letters_end_sentence(text, m.end(), lang, single and not parts, previous)


def _letters_end_sentence(text: str, after: int, lang: str, single: bool, previous: str) -> bool:
    """Whether an abbreviation of single letters ends a sentence before the capitalised word at ``after``.

    Rule: it does when that word typically starts a sentence in ``lang`` ("to the U.S. It was cold",
    "I got a B. Then I left"), when a Spanish ¿ or ¡ opens it, or when a lone letter follows a
    determiner ("I got a B. Mary got a C."); it does not before another initial ("J. K. Rowling") or
    any other capitalised word, taken for a name ("the U.S. Army", "by J. Smith", "John F. Kennedy").
    What stays ambiguous: a sentence ending in letters before a name is kept whole ("We chose plan
    B. Smith did not."), and a name that is also a starter word cuts ("Mary I. The ..."). ``lang``
    has a list in :data:`_STARTERS`; ``single``: the abbreviation is one letter, ``previous`` the word
    before it.
    """
    opened = after
    while opened < len(text) and text[opened] in _OPENERS:
        opened += 1
    if "¿" in text[after:opened] or "¡" in text[after:opened]:
        return True
    found = _LETTERS.match(text, opened)
    if found is None:
        return True  # neither a letter nor a digit: cannot be taken for a name
    if len(found[0]) == 1 and text[found.end() : found.end() + 1] == ".":
        return False  # "J. K. Rowling", "U. S. Army": the next initial
    if found[0].lower() in _STARTERS[lang]:
        return True
    return single and previous in _DETERMINERS.get(lang, frozenset())


def _word_start(text: str, end: int) -> int:
    """Where the word that ends at ``end`` begins (after the last space before it)."""
    begin = end
    while begin > 0 and not text[begin - 1].isspace():
        begin -= 1
    return begin


def _spaced_parts(text: str, begin: int) -> list[str]:
    """The letters ("z", "ee") of a spaced abbreviation whose last part starts at ``begin`` ("z. B.",
    "EE. UU.", "U. S."), lower case, in order; empty where the word before is no such letter."""
    parts: list[str] = []
    end = begin
    while end > 0 and text[end - 1].isspace():
        end -= 1
        while end > 0 and text[end - 1].isspace():
            end -= 1
        start = _word_start(text, end)
        found = _SPACED_PART.fullmatch(text, start, end)
        if found is None:
            break
        parts.insert(0, found[0][:-1].lower())
        end = start
    return parts


def _previous_word(text: str, begin: int) -> str:
    """The word before the one starting at ``begin``, lower case, without quotes or punctuation."""
    end = begin
    while end > 0 and text[end - 1].isspace():
        end -= 1
    return text[_word_start(text, end) : end].strip(_OPENERS + _CLOSERS + ",;:").lower()


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
