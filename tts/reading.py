"""Numbers read aloud for the TTS front end: what a reader says for "1,500", "2.5", "3rd", "-5", "10 %", "$5" or "3:30".

Why a reader of its own: speech should say what the text means, so a thousands separator, a decimal
mark, a sign, a currency symbol or an ordinal suffix belongs to the number being read. The corpus
speller, :func:`voxkit.data.text.spell_numbers`, reads plain integers only and has to stay exactly as
it is: every training plan is built from its output, so changing it would change every corpus.

Why num2words' words: the TTS model learnt numbers from text that speller wrote, so every number is
said in num2words' own forms ("twenty-one", "vingt et un"), with the commas it puts into large
numbers dropped, as the speller drops them. Only the words around the numbers (a sign, "percent",
"o'clock", the Spanish "coma" for a decimal comma) come from the table below.

What each language reads, and the deliberate limits, are listed in docs/tts.md ("How numbers are
read"). Whatever is made of digits and matches none of the forms is still read, never left as digits
and never an error: its digit groups one by one, short groups as numbers, long ones digit by digit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from num2words import CONVERTER_CLASSES, num2words

from voxkit.data.text import LANGUAGES, language_spec, spell_numbers

_BLANK = "[ \u00a0\u202f]"  # a space, no-break space or narrow no-break space inside a number's writing
_GROUP_SPACES = "\u00a0\u202f"  # group thousands in every language (typographic practice)
_CURRENCIES = {"$": "USD", "€": "EUR", "£": "GBP"}
_CENTS_MARK = "\x00"  # passed to num2words as the units/cents separator, to cut its answer in two
_LONGEST_PLAIN = 9  # digits of the longest ungrouped integer read as a number; longer ones are ids, read digit by digit
_LONGEST_GROUPED = 15  # digits of the longest grouped number read as one; longer ones are read group by group
_SUPERSCRIPTS = str.maketrans("ᵉʳˢ", "ers")
# what num2words raises for a value or a form one of its languages lacks (Italian has no word for
# minus, Brazilian Portuguese knows one currency, huge numbers overflow)
_NUM2WORDS_FAILURES = (ArithmeticError, AttributeError, LookupError, NotImplementedError, TypeError, ValueError)

_VOWELS = frozenset("aeiouyàâéèêëîïôûüœ")  # French "de" before these is "d'": "un million d'euros"
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_PIECES = re.compile(r"(\d+)|(.)", re.S)
_NON_DIGIT = re.compile(r"\D")
_PREVIOUS_WORD = re.compile(r"(\w+)\W{0,3}$")
_NEXT_WORD = re.compile(r"\s*(\w+)")
_ENGLISH_EURO = re.compile(r"\beuro$")  # num2words' English says "two euro"; English speakers say "two euros"

_EN_MONTHS = frozenset({"january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
                        "december"})
_DE_MONTHS = frozenset({"januar", "februar", "märz", "april", "mai", "juni", "juli", "august", "september", "oktober", "november",
                        "dezember"})
_DE_NOMINATIVE = frozenset({"der", "die", "das"})  # "der 3. Platz": ordinal, base form ("dritte")
_DE_DATIVE = frozenset({"dem", "den", "des", "am", "im", "zum", "zur", "vom", "beim"})  # "am 3. Mai": ordinal, "-n" ("dritten")


class _Unsayable(Exception):
    """num2words has no words for this value or form in this language; the digits are read instead."""


@dataclass(frozen=True)
class _Reading:
    """How one language writes what surrounds its numbers, and the words it says for it."""

    groups: str  # characters that separate thousands, besides no-break spaces
    decimal: str  # the decimal mark
    decimal_word: str  # said for the decimal mark
    dot_word: str  # said for a dot between digit groups that make no number ("1.2.3")
    minus: str
    plus: str
    percent: str
    cents_joiner: str  # between the units and the cents of an amount of money
    ordinal: str = ""  # regex of the marks that make digits an ordinal; empty: the language has none here
    clock: tuple[str, str] = ("{h} {m}", "{h}")  # a time with minutes, and on the hour
    hour_unit: tuple[str, str] = ("", "")  # word after an hour, singular and plural ("heure", "heures")
    hour_fix: tuple[str, str] = ("", "")  # an hour's ending and its form before the unit ("un" -> "une heure")
    hour_mark: bool = False  # "15h30", "3 h": the French way of writing a time or a number of hours
    decades: bool = False  # "the 1990s", "the 80s"
    scales: str = ""  # regex of scale words that may follow an amount of money ("$5 million")
    scale_of: str = ""  # word between a scale word and the currency ("cinq millions de dollars")
    year_cues: frozenset[str] = frozenset()  # lower-case words after which 1100-1999 is read as a year


_READINGS: dict[str, _Reading] = {
    "en": _Reading(",", ".", "point", "point", "minus", "plus", "percent", "and", ordinal=r"(?i:st|nd|rd|th)", decades=True,
                   scales="thousand|million|billion|trillion",
                   year_cues=_EN_MONTHS | {"in", "since", "until", "till", "by", "from", "to", "before", "after", "circa", "around",
                                           "year"}),
    "fr": _Reading(" ", ",", "virgule", "point", "moins", "plus", "pour cent", "et",
                   ordinal=r"ères?|ers?|res?|èmes?|ndes?|nds?|es?|ᵉʳˢ?|ʳᵉˢ?|ᵉˢ?", hour_unit=("heure", "heures"),
                   hour_fix=("un", "une"), hour_mark=True, scales="millions?|milliards?", scale_of="de"),
    "es": _Reading(".", ",", "coma", "punto", "menos", "más", "por ciento", "con", ordinal=r"\.?[ºª]|\.?er|\.[oa]s",
                   clock=("{h} y {m}", "{h} en punto"), hour_fix=("uno", "una"), scales="millones|millón", scale_of="de"),
    "de": _Reading(".", ",", "Komma", "Punkt", "minus", "plus", "Prozent", "und", ordinal=r"\.(?=[ \u00a0]+\w)",
                   hour_unit=("Uhr", "Uhr"), hour_fix=("eins", "ein"), scales="Tausend|Millionen|Million|Milliarden|Milliarde",
                   year_cues=_DE_MONTHS | {"jahr", "jahre", "jahres", "seit", "bis", "anno", "um", "ab", "von", "vor", "nach"}),
    "it": _Reading(".", ",", "virgola", "punto", "meno", "più", "per cento", "e", ordinal=r"\.?[ºª]", clock=("{h} e {m}", "{h}"),
                   hour_fix=("uno", "una"), scales="milioni|milione|miliardi|miliardo", scale_of="di"),
    "pt": _Reading(".", ",", "vírgula", "ponto", "menos", "mais", "por cento", "e", ordinal=r"\.?[ºª]", clock=("{h} e {m}", "{h}"),
                   hour_fix=("um", "uma"), scales="milhões|milhão|bilhões|bilhão", scale_of="de"),
    "nl": _Reading(".", ",", "komma", "punt", "min", "plus", "procent", "en", ordinal=r"ste|de|e", hour_unit=("uur", "uur"),
                   scales="miljoen|miljard"),
    "pl": _Reading(" ", ",", "przecinek", "kropka", "minus", "plus", "procent", "i"),
}


class _Reader:
    """One language's reading: its patterns, compiled once, and num2words' converter for it."""

    def __init__(self, lang: str, reading: _Reading) -> None:
        self.lang = lang
        self.r = reading
        self.code = LANGUAGES[lang].num2words
        self.converter = CONVERTER_CLASSES[self.code]
        self.digit_words = [self.cardinal(d) for d in range(10)]
        spaces = re.escape("".join(c for c in reading.groups if c.isspace()) + _GROUP_SPACES)
        groups = re.escape(reading.groups + _GROUP_SPACES)
        run = rf"(?:\d{{1,3}}(?:[{spaces}]\d{{3}})+(?!\d)|\d)(?:\d|[.,:/-](?=\d))*"
        after = [rf"(?P<percent>{_BLANK}?%)", rf"(?P<currency>{_BLANK}?[$€£])"]
        if reading.ordinal:
            after.append(rf"(?P<ordinal>{reading.ordinal})(?!\w)")
        if reading.hour_mark:
            after.append(rf"(?P<hours>{_BLANK}?h(?:{_BLANK}?(?P<minutes>\d{{2}}))?)(?!\w)")
        if reading.decades:
            after.append(r"(?P<decade>s)(?!\w)")
        scale = rf"(?:(?P<scale>{_BLANK}+(?:{reading.scales})(?!\w))(?P<scaled>{_BLANK}?[$€£])?)?" if reading.scales else ""
        self.token = re.compile(
            r"(?P<sign>(?<![^\s(\[{=<>~\"'«„“¿¡])[-+−])?"  # a sign only where a number can start: not "COVID-19"
            rf"(?:(?P<pre>[$€£]){_BLANK}?)?"
            rf"(?<!\d)(?P<run>{run})"
            rf"(?:{'|'.join(after)})?{scale}"
        )
        self.numeral = re.compile(rf"(?P<int>\d{{1,3}}(?:[{groups}]\d{{3}})+|\d+)(?:{re.escape(reading.decimal)}(?P<frac>\d+))?")
        # a scale word right before the currency's name takes "de" / "di": "un million de dollars"
        self.scale_word = re.compile(rf"\b({reading.scales}) (?=\S+$)") if reading.scale_of else None

    # ------------------------------------------------------------------------- words

    def say(self, value: int | Decimal, **options: str) -> str:
        """num2words' words for ``value`` in this language, without the commas it puts into large numbers."""
        try:
            return str(num2words(value, lang=self.code, **options)).replace(",", "")
        except _NUM2WORDS_FAILURES as err:
            raise _Unsayable(str(err)) from err

    def cardinal(self, value: int) -> str:
        return self.say(value)

    def spell(self, digits: str) -> str:
        """Digits one by one ("007": "zero zero seven")."""
        return " ".join(self.digit_words[int(d)] for d in digits)

    def loose(self, run: str) -> str:
        """Digit groups that make no number ("1.2.3", "555-1234"): one- and two-digit groups as numbers,
        longer ones digit by digit, a dot said, a comma kept, other separators a pause."""
        words: list[str] = []
        for digits, mark in _PIECES.findall(run):
            if digits:
                plain = len(digits) == 1 or (len(digits) == 2 and digits[0] != "0")
                words.append(self.cardinal(int(digits)) if plain else self.spell(digits))
            elif mark == "." and words:
                words.append(self.r.dot_word)
            elif mark == "," and words:
                words[-1] += ","
        return " ".join(words)

    def number(self, found: re.Match[str]) -> str:
        """A number as written in this language: grouped or not, with or without decimals."""
        whole = found["int"]
        digits = _NON_DIGIT.sub("", whole)
        if len(digits) == len(whole) and (len(digits) > _LONGEST_PLAIN or (len(digits) > 1 and digits[0] == "0")):
            words = self.spell(digits)
        else:
            words = self.cardinal(int(digits))
        if found["frac"] is not None:
            words += f" {self.r.decimal_word} {self.spell(found['frac'])}"
        return words

    def hour(self, value: int) -> str:
        """An hour before its unit: "une heure", "ein Uhr", "una"."""
        words = self.cardinal(value)
        ending, fixed = self.r.hour_fix
        if ending and words.endswith(ending):
            words = words[: -len(ending)] + fixed
        singular, plural = self.r.hour_unit
        unit = singular if value < 2 else plural
        return f"{words} {unit}" if unit else words

    def clock(self, hour: int, minute: int) -> str:
        if self.lang == "en":
            if minute == 0:
                return f"{self.cardinal(hour)} o'clock" if 1 <= hour <= 12 else f"{self.cardinal(hour)} hundred"
            return f"{self.cardinal(hour)} {'oh ' if minute < 10 else ''}{self.cardinal(minute)}"
        with_minutes, on_the_hour = self.r.clock
        if minute == 0:
            return on_the_hour.format(h=self.hour(hour))
        return with_minutes.format(h=self.hour(hour), m=self.cardinal(minute))

    def unit(self, forms: tuple[str, ...], count: int) -> str:
        try:
            return str(self.converter.pluralize(count, forms))
        except _NUM2WORDS_FAILURES:  # a language without plural rules of its own in num2words
            return forms[0] if count == 1 else forms[-1]

    def money(self, found: re.Match[str] | None, run: str, symbol: str, scale: str) -> str:
        """An amount of money: "$5" five dollars, "2,50 €" deux euros et cinquante centimes, "$5 million"."""
        code = _CURRENCIES[symbol]
        forms = getattr(self.converter, "CURRENCY_FORMS", {}).get(code)
        said = self._as_written(found, run)
        if forms is None:
            return f"{said}{scale} {symbol}"  # a currency num2words has no words for in this language
        if found is None or scale or (found["frac"] is not None and len(found["frac"]) > 2):
            return self._fix_units(f"{said}{scale} {self.unit(forms[0], 1_000_000)}", code, 2)
        units = int(_NON_DIGIT.sub("", found["int"]))
        cents = int((found["frac"] or "0").ljust(2, "0"))
        try:
            text = self.say(Decimal(units) + Decimal(cents) / 100, to="currency", currency=code, separator=_CENTS_MARK)
            whole, _, part = text.partition(_CENTS_MARK)
        except _Unsayable:  # a language whose num2words speaks one currency only
            whole = f"{self.cardinal(units)} {self.unit(forms[0], units)}"
            part = f"{self.cardinal(cents)} {self.unit(forms[1], cents)}"
        whole, part = self._fix_units(whole.strip(), code, units), part.strip()
        if cents == 0:
            return whole
        if units == 0:
            return part
        return f"{whole} {self.r.cents_joiner} {part}"

    def _fix_units(self, words: str, code: str, units: int) -> str:
        if self.scale_word is not None:
            words = self.scale_word.sub(self._scale_of, words)
        if self.lang == "en" and code == "EUR" and units != 1:
            words = _ENGLISH_EURO.sub("euros", words)
        return words

    def _scale_of(self, m: re.Match[str]) -> str:
        of = self.r.scale_of
        elided = self.lang == "fr" and m.string[m.end() : m.end() + 1] in _VOWELS
        return f"{m[1]} {of[:-1]}'" if elided else f"{m[1]} {of} "

    def ordinal(self, value: int, mark: str, previous: str, following: str) -> str | None:
        """The ordinal for ``value`` written with ``mark``; None where the mark is no ordinal (German "3." ending a sentence)."""
        words = self.say(value, to="ordinal")
        mark = mark.translate(_SUPERSCRIPTS)
        if self.lang == "de":
            if previous in _DE_NOMINATIVE:
                return words
            if previous in _DE_DATIVE or following in _DE_MONTHS:
                return words + "n"
            return words if following[:1].islower() else None
        if self.lang == "fr":
            if value == 1:
                words = "première" if mark[0] in "rè" else "premier"
            elif value == 2 and mark.startswith("nd"):
                words = "seconde" if mark.startswith("nde") else "second"
            return words + "s" if mark.endswith("s") else words
        if self.lang in ("es", "it", "pt"):
            if mark.endswith("er") and words in ("primero", "tercero"):
                return words[:-1]  # "1.er piso": primer
            if "ª" in mark or mark.endswith("as"):
                words = " ".join(w[:-1] + "a" if w.endswith("o") else w for w in words.split())
            return " ".join(w + "s" for w in words.split()) if mark.endswith("s") else words
        return words

    # ------------------------------------------------------------------------- one match

    def replace(self, m: re.Match[str]) -> str:
        try:
            words = self.read(m)
        except _Unsayable:
            words = self.spell(_NON_DIGIT.sub("", m["run"]))
        text = m.string
        if m.start() and text[m.start() - 1].isalnum():
            words = " " + words  # "A4": "A four"
        if m.end() < len(text) and text[m.end()].isalnum():
            words += " "  # "5km": "five km"
        return words

    def read(self, m: re.Match[str]) -> str:
        """The words for one match of :attr:`token`: a sign, a currency, the digits and what follows them."""
        run = m["run"]
        found = self.numeral.fullmatch(run)
        if found and len(_NON_DIGIT.sub("", found["int"])) > _LONGEST_GROUPED:
            found = None
        plain = found is not None and found["frac"] is None  # an integer, grouped or not
        ungrouped = plain and found["int"].isdigit()
        value = int(_NON_DIGIT.sub("", found["int"])) if found else 0
        extra = m.groupdict()
        symbol = m["pre"] or (m["currency"] or extra.get("scaled") or "").strip()
        scale = extra.get("scale") or ""
        if symbol:
            words, scale = self.money(found, run, symbol, scale), ""
        elif extra.get("ordinal"):
            said = self.ordinal(value, m["ordinal"], self._previous(m), self._following(m)) if plain else None
            words = said if said is not None else self._as_written(found, run) + m["ordinal"]
        elif extra.get("hours"):
            words = self.hour(value) if ungrouped else f"{self._as_written(found, run)} {self.r.hour_unit[1]}"
            if m["minutes"]:
                words += f" {self.cardinal(int(m['minutes']))}"
        elif extra.get("decade"):
            words = (self._decade(value) if ungrouped else None) or f"{self._as_written(found, run)} s"
        elif (clock := _CLOCK.fullmatch(run)) and int(clock[1]) <= 24 and int(clock[2]) < 60 and not m["percent"]:
            words = self.clock(int(clock[1]), int(clock[2]))
        elif ungrouped and len(run) == 4 and 1100 <= value <= 1999 and not (m["sign"] or m["percent"]) \
                and self._previous(m) in self.r.year_cues:
            words = self.say(value, to="year")
        else:
            words = self._as_written(found, run)
        if m["percent"]:
            words += f" {self.r.percent}"
        if m["sign"]:
            words = f"{self.r.plus if m['sign'] == '+' else self.r.minus} {words}"
        return words + scale

    def _as_written(self, found: re.Match[str] | None, run: str) -> str:
        return self.number(found) if found else self.loose(run)

    def _decade(self, value: int) -> str | None:
        """A decade, said as English says it: "the 1990s" nineteen nineties, "the 80s" eighties."""
        if value % 10 or not (10 <= value <= 90 or 1100 <= value <= 2099):
            return None
        words = self.say(value, to="year") if value >= 1100 else self.cardinal(value)
        return words[:-1] + "ies" if words.endswith("y") else words + "s"

    @staticmethod
    def _previous(m: re.Match[str]) -> str:
        found = _PREVIOUS_WORD.search(m.string, max(0, m.start() - 40), m.start())
        return found[1].lower() if found else ""

    @staticmethod
    def _following(m: re.Match[str]) -> str:
        found = _NEXT_WORD.match(m.string, m.end())
        return found[1] if found else ""


_READERS: dict[str, _Reader] = {lang: _Reader(lang, reading) for lang, reading in _READINGS.items()}


def read_aloud(text: str, lang: str) -> str:
    """``text`` with every number written out as ``lang`` says it ("$1,500.50" -> "one thousand five
    hundred dollars and fifty cents"). ``lang`` is a voxkit language code (:data:`voxkit.data.text.LANGUAGES`);
    another raises :class:`voxkit.errors.DataError`. A language of that table without a reading here
    gets the corpus speller's plain integers."""
    language_spec(lang)
    reader = _READERS.get(lang)
    if reader is None:
        return spell_numbers(text, lang)
    if not any(c.isdigit() for c in text):
        return text
    return reader.token.sub(reader.replace, text)
