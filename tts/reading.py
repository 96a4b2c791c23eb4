"""Numbers read aloud for the TTS front end: what a reader says for "1,500", "2.5", "3rd", "-5", "10 %", "$5", "3:30",
"3-5", "3/4" or "5 km".

Why a reader of its own: speech should say what the text means, so a thousands separator, a decimal
mark, a sign, a currency symbol or an ordinal suffix belongs to the number being read. The corpus
speller, :func:`voxkit.data.text.spell_numbers`, reads plain integers only and has to stay exactly as
it is: every training plan is built from its output, so changing it would change every corpus.

Why num2words' words: the TTS model learnt numbers from text that speller wrote, so every number is
said in num2words' own forms ("twenty-one", "vingt et un"), with the commas it puts into large
numbers dropped, as the speller drops them. Only the words around the numbers (a sign, "percent",
"o'clock", the Spanish "coma" for a decimal comma, "to" in a range, a unit's name, a fraction's
denominator where num2words has no word for it) come from the tables below.

Dates ("2024-01-15"), clock ranges, "½" and "#1" are read by :mod:`voxkit.tts.reading_forms`,
called from here. What each language reads, and the deliberate limits, are listed in docs/tts.md
("How numbers are read"). Whatever is made of digits and matches none of the forms is still read,
never left as digits and never an error: its digit groups one by one, short groups as numbers, long
ones digit by digit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from num2words import CONVERTER_CLASSES, num2words

from voxkit.data.text import LANGUAGES, language_spec, spell_numbers
from voxkit.tts.reading_forms import MARKS, MONTHS, clock_range, hours_cue, iso_date, read_marks, wraps_at_noon

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

_EN_MONTHS = frozenset(month.lower() for month in MONTHS["en"])
_DE_MONTHS = frozenset(month.lower() for month in MONTHS["de"])
_DE_NOMINATIVE = frozenset({"der", "die", "das"})  # "der 3. Platz": ordinal, base form ("dritte")
_DE_DATIVE = frozenset({"dem", "den", "des", "am", "im", "zum", "zur", "vom", "beim"})  # "am 3. Mai": ordinal, "-n" ("dritten")

# Units read after a number, by their symbol: singular, plural, grammatical gender ("m" or "f", for
# "une minute", "una hora", "eine Stunde"). Only symbols that are unambiguous after a number: "m" is
# meters (minutes are "min"); "h" is French's own hour mark (see _Reading.hour_mark), so not here for
# French; a lone "°" only where it cannot be an ordinal mark (Spanish "1°" is "primero").
_UNITS: dict[str, dict[str, tuple[str, str, str]]] = {
    "en": {"km": ("kilometer", "kilometers", "m"), "m": ("meter", "meters", "m"), "cm": ("centimeter", "centimeters", "m"),
           "mm": ("millimeter", "millimeters", "m"), "kg": ("kilogram", "kilograms", "m"), "g": ("gram", "grams", "m"),
           "h": ("hour", "hours", "m"), "min": ("minute", "minutes", "m"), "s": ("second", "seconds", "m"),
           "km/h": ("kilometer per hour", "kilometers per hour", "m"), "°C": ("degree Celsius", "degrees Celsius", "m"),
           "°F": ("degree Fahrenheit", "degrees Fahrenheit", "m"), "°": ("degree", "degrees", "m")},
    "fr": {"km": ("kilomètre", "kilomètres", "m"), "m": ("mètre", "mètres", "m"), "cm": ("centimètre", "centimètres", "m"),
           "mm": ("millimètre", "millimètres", "m"), "kg": ("kilogramme", "kilogrammes", "m"), "g": ("gramme", "grammes", "m"),
           "min": ("minute", "minutes", "f"), "s": ("seconde", "secondes", "f"),
           "km/h": ("kilomètre à l'heure", "kilomètres à l'heure", "m"), "°C": ("degré Celsius", "degrés Celsius", "m"),
           "°F": ("degré Fahrenheit", "degrés Fahrenheit", "m"), "°": ("degré", "degrés", "m")},
    "es": {"km": ("kilómetro", "kilómetros", "m"), "m": ("metro", "metros", "m"), "cm": ("centímetro", "centímetros", "m"),
           "mm": ("milímetro", "milímetros", "m"), "kg": ("kilogramo", "kilogramos", "m"), "g": ("gramo", "gramos", "m"),
           "h": ("hora", "horas", "f"), "min": ("minuto", "minutos", "m"), "s": ("segundo", "segundos", "m"),
           "km/h": ("kilómetro por hora", "kilómetros por hora", "m"), "°C": ("grado Celsius", "grados Celsius", "m"),
           "°F": ("grado Fahrenheit", "grados Fahrenheit", "m")},
    "de": {"km": ("Kilometer", "Kilometer", "m"), "m": ("Meter", "Meter", "m"), "cm": ("Zentimeter", "Zentimeter", "m"),
           "mm": ("Millimeter", "Millimeter", "m"), "kg": ("Kilogramm", "Kilogramm", "m"), "g": ("Gramm", "Gramm", "m"),
           "h": ("Stunde", "Stunden", "f"), "min": ("Minute", "Minuten", "f"), "s": ("Sekunde", "Sekunden", "f"),
           "km/h": ("Kilometer pro Stunde", "Kilometer pro Stunde", "m"), "°C": ("Grad Celsius", "Grad Celsius", "m"),
           "°F": ("Grad Fahrenheit", "Grad Fahrenheit", "m"), "°": ("Grad", "Grad", "m")},
}
# Fractions: the denominators a language does not say as its ordinal (singular, plural); the others
# are num2words' ordinal ("fifth", "cinquième", "quinto"; German "fünfte" gives "Fünftel")
_FRACTIONS: dict[str, dict[int, tuple[str, str]]] = {
    "en": {2: ("half", "halves"), 4: ("quarter", "quarters")},
    "fr": {2: ("demi", "demis"), 3: ("tiers", "tiers"), 4: ("quart", "quarts")},
    "es": {2: ("medio", "medios"), 3: ("tercio", "tercios")},
    "de": {2: ("halb", "halbe")},
}
_LARGEST_DENOMINATOR = 10  # "3/4" is a fraction, "9/11" or "24/7" are not: read as two numbers
_RANGE = re.compile(r"([^–-]+)([–-])([^–-]+)")  # "3-5", "10–12": two numbers and a hyphen or an en dash
_FRACTION = re.compile(r"([1-9])/([1-9]\d?)")


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
    range_word: str = ""  # said between the ends of a range ("3-5": three to five); empty: no ranges read
    counted: tuple[str, str, str] = ("", "", "")  # an integer's ending before a noun: masculine, feminine ("uno": un, una)


_READINGS: dict[str, _Reading] = {
    "en": _Reading(",", ".", "point", "point", "minus", "plus", "percent", "and", ordinal=r"(?i:st|nd|rd|th)", decades=True,
                   scales="thousand|million|billion|trillion",
                   year_cues=_EN_MONTHS | {"in", "since", "until", "till", "by", "from", "to", "before", "after", "circa", "around",
                                           "year"}, range_word="to"),
    "fr": _Reading(" ", ",", "virgule", "point", "moins", "plus", "pour cent", "et", range_word="à", counted=("un", "un", "une"),
                   ordinal=r"ères?|ers?|res?|èmes?|ndes?|nds?|es?|ᵉʳˢ?|ʳᵉˢ?|ᵉˢ?", hour_unit=("heure", "heures"),
                   hour_fix=("un", "une"), hour_mark=True, scales="millions?|milliards?", scale_of="de"),
    "es": _Reading(".", ",", "coma", "punto", "menos", "más", "por ciento", "con", ordinal=r"\.?[ºª]|\.?er|\.[oa]s",
                   range_word="a", counted=("uno", "un", "una"),
                   clock=("{h} y {m}", "{h} en punto"), hour_fix=("uno", "una"), scales="millones|millón", scale_of="de"),
    "de": _Reading(".", ",", "Komma", "Punkt", "minus", "plus", "Prozent", "und", ordinal=r"\.(?=[ \u00a0]+\w)",
                   range_word="bis", counted=("eins", "ein", "eine"),
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
        dash = "–" if reading.range_word else ""  # an en dash joins a range's numbers where ranges are read
        run = rf"(?:\d{{1,3}}(?:[{spaces}]\d{{3}})+(?!\d)|\d)(?:\d|[.,:/{dash}-](?=\d))*"
        after = [rf"(?P<percent>{_BLANK}?%)", rf"(?P<currency>{_BLANK}?[$€£])"]
        if reading.ordinal:
            after.append(rf"(?P<ordinal>{reading.ordinal})(?!\w)")
        if reading.hour_mark:
            after.append(rf"(?P<hours>{_BLANK}?h(?:{_BLANK}?(?P<minutes>\d{{2}}))?)(?!\w)")
        if reading.decades:
            after.append(r"(?P<decade>s)(?!\w)")
        self.units = _UNITS.get(lang, {})
        if self.units:
            marks = sorted((mark for mark in self.units if mark != "s" and not mark.startswith("°")), key=len, reverse=True)
            forms = [rf"{_BLANK}?(?:{'|'.join(map(re.escape, marks))})", rf"{_BLANK}?[°º]{_BLANK}?[CF]"]
            forms += [rf"{_BLANK}s"] if "s" in self.units else []  # spaced only: "80s" is a decade, "5s" a plural
            forms += [rf"{_BLANK}?°"] if "°" in self.units else []
            after.append(rf"(?P<unit>{'|'.join(forms)})(?![\w/])")  # not "5 m/s": a compound unit stays as written
        self.tail = after[0] + (f"|{after[-1]}" if self.units else "")  # a percent sign or a unit, read after a quantity
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

    def counted(self, words: str, gender: str) -> str:
        """An integer's words before a noun of ``gender`` ("m" or "f"): "un kilómetro", "veintiuna horas",
        "une minute", "eine Stunde"; unchanged where the language has no such form."""
        ending, masculine, feminine = self.r.counted
        if not ending or not words.endswith(ending):
            return words
        words = words[: -len(ending)] + (feminine if gender == "f" else masculine)
        return words[:-2] + "ún" if words.endswith("veintiun") else words  # Spanish "veintiún kilómetros"

    def range_ends(self, run: str, hours: bool = False) -> tuple[re.Match[str], re.Match[str]] | None:
        """The two numbers of a range ("3-5", "10–12", "2,5-3"), or None where ``run`` is none.

        A range goes up (the first number is the smaller: "3-1" is a score, read as two numbers) and
        has no leading zero ("05-03" is a date). An en dash is a range mark whatever the numbers; a
        hyphen only between numbers of as many digits, or of one or two digits and one more ("9-10",
        "95-100"), so that "555-1234", a phone number, stays digit groups. Where words around it say
        ``hours`` (:func:`hours_cue`), a pair going down across noon is a range too ("open 9-5")."""
        parts = _RANGE.fullmatch(run) if self.r.range_word else None
        if parts is None:
            return None
        low, high = self.numeral.fullmatch(parts[1]), self.numeral.fullmatch(parts[3])
        if low is None or high is None:
            return None
        digits = [_NON_DIGIT.sub("", end["int"]) for end in (low, high)]
        if any(len(d) > _LONGEST_PLAIN or (len(d) > 1 and d[0] == "0") for d in digits):
            return None
        if hours and low["frac"] is None and high["frac"] is None and wraps_at_noon(int(digits[0]), int(digits[1])):
            return low, high
        short, long = len(digits[0]), len(digits[1])
        if parts[2] == "-" and short != long and not (short <= 2 and long == short + 1):
            return None
        return (low, high) if _value(low) < _value(high) else None

    def range(self, ends: tuple[re.Match[str], re.Match[str]], previous: str, gender: str, following: str = "") -> str:
        """A range, its ends said as numbers ("three to five"), as years after a year cue ("from
        1990-1999": nineteen ninety to nineteen ninety-nine), before a unit of ``gender`` in its form."""
        low, high = (_value(end) for end in ends)
        if previous in self.r.year_cues and all(len(end[0]) == 4 for end in ends) and 1100 <= low <= 1999 \
                and high <= 2099 and low == int(low) and high == int(high):
            said = [self.say(int(low), to="year"), self.say(int(high), to="year")]
        else:
            said = [self.number(end) for end in ends]
            if gender or (self.lang == "de" and following[:1].isupper()):  # German before a noun: "1-2 Tage", ein bis zwei
                said = [self.counted(w, gender or "m") if end["frac"] is None else w for w, end in zip(said, ends, strict=True)]
        return f" {self.r.range_word} ".join(said)

    def fraction(self, run: str) -> str | None:
        """A simple fraction ("1/2" one half, "3/4" trois quarts, "2/3" dos tercios, "1/8" ein Achtel):
        a numerator smaller than a denominator of at most ten; None for anything else ("24/7", "9/11")."""
        parts = _FRACTION.fullmatch(run)
        names = _FRACTIONS.get(self.lang)
        if parts is None or names is None:
            return None
        top, bottom = int(parts[1]), int(parts[2])
        if not top < bottom <= _LARGEST_DENOMINATOR:
            return None
        if bottom in names:
            name = names[bottom][top > 1]
        elif self.lang == "de":
            name = self.say(bottom, to="ordinal")[:-1].capitalize() + "el"  # fünfte: Fünftel
        else:
            name = self.say(bottom, to="ordinal") + ("s" if top > 1 else "")
        return f"{self.counted(self.cardinal(top), 'm')} {name}"

    def unit_name(self, forms: tuple[str, str, str], found: re.Match[str] | None) -> str:
        """A unit's name after a number (``found``) or a range (None): singular after one ("1 km"),
        in French after anything below two ("1,5 kilomètre"), plural otherwise."""
        if found is None:
            return forms[1]
        value = _value(found)
        one = value < 2 if self.lang == "fr" else value == 1 and found["frac"] is None
        return forms[0] if one else forms[1]

    def ordinal(self, value: int, mark: str, previous: str, following: str) -> str | None:
        """The ordinal for ``value`` written with ``mark``; None where the mark is no ordinal (German "3." ending a sentence)."""
        words = self.say(value, to="ordinal")
        mark = mark.translate(_SUPERSCRIPTS)
        if self.lang == "de":
            if previous in _DE_NOMINATIVE:
                return words
            if previous in _DE_DATIVE or following.lower() in _DE_MONTHS:
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
            words += " "  # "3x": "three x"
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
        unit = extra.get("unit") or ""
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
        elif ungrouped and len(run) == 4 and 1100 <= value <= 1999 and not (m["sign"] or m["percent"] or unit) \
                and self._previous(m) in self.r.year_cues:
            words = self.say(value, to="year")
        else:
            ends = None if found else self.range_ends(run, hours_cue(self.lang, self._previous(m), self._following(m)))
            forms = self.units.get(re.sub(_BLANK, "", unit).replace("º", "°")) if found or ends else None
            gender = forms[2] if forms else ""
            if ends:
                words = self.range(ends, self._previous(m), gender, self._following(m))
            elif found:
                words = self.counted(self.number(found), gender) if plain and gender else self.number(found)
            else:
                words = self.fraction(run) or iso_date(self, run, self._previous(m)) or clock_range(self, run) or self.loose(run)
            if forms:
                words, unit = f"{words} {self.unit_name(forms, found)}", ""
        if unit:
            words += f" {unit.strip()}"  # a unit after what is not a plain quantity ("$5m", "1/2 kg") stays as written
        if m["percent"]:
            words += f" {self.r.percent}"
        if m["sign"]:
            words = f"{self.r.plus if m['sign'] == '+' else self.r.minus} {words}"
        return words + scale

    def _as_written(self, found: re.Match[str] | None, run: str) -> str:
        """A number as written, else a range ("$5-10": five to ten dollars), a fraction or digit groups."""
        if found:
            return self.number(found)
        ends = self.range_ends(run)
        return self.range(ends, "", "") if ends else self.fraction(run) or self.loose(run)

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


def _value(found: re.Match[str]) -> Decimal:
    """The value of a match of :attr:`_Reader.numeral`, without its sign."""
    return Decimal(f"{_NON_DIGIT.sub('', found['int'])}.{found['frac'] or 0}")


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
    if not any(c.isdigit() or c in MARKS for c in text):
        return text
    return reader.token.sub(reader.replace, read_marks(text, reader))
