"""Written forms around numbers that :mod:`voxkit.tts.reading` reads besides the numbers themselves:
ISO dates ("2024-01-15"), clock ranges ("9:00-17:00", "9-5" in opening hours), vulgar fractions
("½", "1½") and the number sign ("#1", "#voxkit").

Why a module of its own: these forms need a calendar, Unicode's fraction characters and words of
their own (month names, "number"), which would push the reader past the size the house keeps; the
reader calls in here at the points where each form can be told apart from a plain number.

The numbers inside every form are still said by the reader itself (num2words' words, as
:mod:`voxkit.tts.reading` explains), so a date's day or a fraction says what the same digits say
elsewhere in the text. What is read and the deliberate limits are listed in docs/tts.md.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the reader imports this module: its class is needed for the signatures only
    from voxkit.tts.reading import _Reader

# Month names, in calendar order, for the languages whose dates are read ("2024-01-15", "am 3. Mai")
MONTHS: dict[str, tuple[str, ...]] = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
           "December"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre",
           "décembre"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre",
           "diciembre"),
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November",
           "Dezember"),
}
# said for "#" before a number ("#1": number one); every language with a reading has one
NUMBER_SIGN: dict[str, str] = {"en": "number", "fr": "numéro", "es": "número", "de": "Nummer", "it": "numero", "pt": "número",
                               "nl": "nummer", "pl": "numer"}
# English writes opening hours on the twelve-hour clock, so "open 9-5" goes down across noon: a word
# before or after such a pair that speaks of hours makes it a range ("nine to five"), where elsewhere
# a pair that goes down is a score ("won 3-1"). The other languages write these hours on the 24-hour
# clock ("9-17 h"), which goes up and is a range already. Before the pair, a short day name too, as
# timetables write them ("Mon-Fri 9-5, Sat 10-2"); a full one is left out: "Sunday, 3-1" is a score.
_HOURS_BEFORE = {"en": frozenset({"open", "opens", "opening", "hours", "closed", "shift", "shifts", "work", "works", "working",
                                  "daily", "weekdays", "weekends", "mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri",
                                  "sat", "sun"})}
_HOURS_AFTER = {"en": frozenset({"daily", "weekdays", "weekends", "am", "pm"})}
_LATEST_HOUR = 12  # the twelve-hour clock: "9-5" wraps at noon, "15-9" is no opening time

# Unicode's vulgar fractions ("½", "⅔", "⅞"), each with the "1/2" it stands for (its compatibility
# form, written with a fraction slash), so that "½" is read as "1/2" is
_VULGAR: dict[str, str] = {
    c: form.replace("\u2044", "/")
    for c in map(chr, [*range(0xBC, 0xBF), *range(0x2150, 0x215F)])
    if re.fullmatch(r"[1-9]\u2044[1-9]\d?", form := unicodedata.normalize("NFKC", c))
}
MARKS = frozenset("#" + "".join(_VULGAR))  # characters that may need reading in a text without digits
# "1½", "1 ½" (a whole number and a fraction: one and a half); "½" alone; never the "5" of "2.5½" nor
# the "10" of "$10 ½", which belong to the number or the amount the reader reads
_VULGAR_FORM = re.compile(rf"(?:(?<![\w.,$€£])([1-9]\d{{0,8}})[ \u00a0\u202f]?)?([{''.join(_VULGAR)}])")
_VULGAR_FORMS: dict[str, re.Pattern[str]] = {}  # by language: _VULGAR_FORM and the reader's percent sign or unit after it
_BLANKS = re.compile("[ \u00a0\u202f]")
_NUMBER_SIGN = re.compile(r"(?<![\w&#])#(?=\d)")  # "#1"; not "&#38;" (an HTML character) nor "C#1"
_HASHTAG = re.compile(r"(?<![\w&#])#(?=[^\W\d_])")  # "#voxkit"; not "C#" nor "# Title"
_ISO_DATE = re.compile(r"([1-9]\d{3})-(\d{2})-(\d{2})")
_CLOCK_RANGE = re.compile(r"(\d{1,2}):(\d{2})[–-](\d{1,2}):(\d{2})")


def read_marks(text: str, reader: _Reader) -> str:
    """``text`` with its number signs and vulgar fractions in words, before the reader reads the digits.

    "#1" becomes "number 1" (the reader then says the number as it says any other: "number one",
    "numéro un", "número uno", "Nummer eins"). A "#" before a word, a hashtag, is dropped: a listener
    hears the word the tag is made of ("I love #voxkit": I love voxkit), as in prose, where "hashtag"
    would be a word the writer never wrote and the mark itself has no sound (the model never saw it)."""
    text = _NUMBER_SIGN.sub(f"{NUMBER_SIGN[reader.lang]} ", text)
    text = _HASHTAG.sub("", text)
    form = _VULGAR_FORMS.get(reader.lang)
    if form is None:  # the fraction, then what the reader reads after a quantity: a percent sign or a unit
        form = _VULGAR_FORMS[reader.lang] = re.compile(rf"{_VULGAR_FORM.pattern}(?P<tail>{reader.tail})?")
    return form.sub(lambda m: _vulgar(m, reader), text)


def _vulgar(m: re.Match[str], reader: _Reader) -> str:
    """A vulgar fraction as the reader says the same fraction written with a slash ("½": one half, un
    demi, un medio, ein halb), after a whole number a mixed number ("1½": one and a half), then the
    percent sign or unit after it as after a number ("2½ km": two and a half kilometers). A language
    with no fraction words here gets the digits ("1/2"), which it then reads as it reads "1/2"."""
    written = _VULGAR[m[2]]
    said = reader.fraction(written)
    if said is None:
        said = (f"{m[1]} {written}" if m[1] else written) + (m["tail"] or "")
    else:
        said = _mixed(reader, int(m[1]), written, said) if m[1] else said
        if m["percent"]:
            said += f" {reader.r.percent}"
        elif m["tail"]:
            said += f" {_unit(reader, m['tail'], m[1])}"
    text = m.string
    if m.start() and text[m.start() - 1].isalnum() and text[m.start() - 1] not in _VULGAR:  # "½½": one space between
        said = " " + said
    if m.end() < len(text) and text[m.end()].isalnum():
        said += " "
    return said


def _unit(reader: _Reader, unit: str, whole: str | None) -> str:
    """A unit's name after a vulgar fraction: the singular after a fraction alone, less than one ("½
    km": one half kilometer, un demi kilomètre), after a mixed number what follows a decimal ("2½ km":
    two and a half kilometers, zweieinhalb Kilometer; French singular below two: un et demi kilomètre)."""
    forms = reader.units[_BLANKS.sub("", unit).replace("º", "°")]
    return forms[0] if whole is None or (reader.lang == "fr" and int(whole) < 2) else forms[1]


def _mixed(reader: _Reader, whole: int, written: str, fraction: str) -> str:
    """A whole number and a fraction as each language joins them: "one and a half", "two and three
    quarters", "un et demi", "uno y medio", "dos y un tercio", "eineinhalb", "zweidreiviertel"."""
    number = reader.cardinal(whole)
    top, name = fraction.split(" ", 1)  # the numerator is one word for 1 to 9 in every language here
    one_half = written == "1/2"
    if reader.lang == "en":
        article = ("an" if name[0] in "aeiou" else "a") if written.startswith("1/") else top
        return f"{number} and {article} {name}"
    if reader.lang == "fr":
        return f"{number} et {name if one_half else fraction}"
    if reader.lang == "es":
        return f"{number} y {name if one_half else fraction}"
    # German writes a mixed number as one word, "eins" as "ein" before what follows: eineinhalb
    stem = number[:-1] if number.endswith("eins") else number
    return stem + fraction.replace(" ", "").lower()


def iso_date(reader: _Reader, run: str, previous: str) -> str | None:
    """An ISO date ("2024-01-15") as the language says a date, or None where ``run`` is none or is no
    day of the calendar ("2024-13-45", "2023-02-29"): January fifteenth, twenty twenty-four; quinze
    janvier deux mille vingt-quatre; quince de enero de dos mil veinticuatro; fünfzehnten Januar
    zweitausendvierundzwanzig. The year is num2words' year, as the reader says the years it knows
    are years; the day is what the reader says for the same day written out: "1er janvier"
    premier, "1 de enero" uno, German "15. Januar" by the word before it ("am": fünfzehnten, "der":
    fünfzehnte)."""
    months = MONTHS.get(reader.lang)
    parts = _ISO_DATE.fullmatch(run)
    if months is None or parts is None:
        return None
    year, month, day = (int(p) for p in parts.groups())
    try:
        date(year, month, day)
    except ValueError:
        return None
    name, said_year = months[month - 1], reader.say(year, to="year")
    if reader.lang == "en":
        return f"{name} {reader.say(day, to='ordinal')}, {said_year}"
    if reader.lang == "fr":
        return f"{reader.ordinal(1, 'er', previous, name) if day == 1 else reader.cardinal(day)} {name} {said_year}"
    if reader.lang == "es":
        return f"{reader.cardinal(day)} de {name} de {said_year}"
    return f"{reader.ordinal(day, '.', previous, name) or reader.cardinal(day)} {name} {said_year}"


def clock_range(reader: _Reader, run: str) -> str | None:
    """Two clock times joined by a dash ("9:00-17:00", "9:30–5:30"), each said as the reader says a
    time, with the language's range word between: nine o'clock to seventeen hundred, neuf heures à
    dix-sept heures. Either order: a time range may cross noon or midnight, and a score has no
    colon. None where ``run`` is none, or the language reads no ranges."""
    parts = _CLOCK_RANGE.fullmatch(run) if reader.r.range_word else None
    if parts is None:
        return None
    start_hour, start_minute, end_hour, end_minute = (int(p) for p in parts.groups())
    if max(start_hour, end_hour) > 24 or max(start_minute, end_minute) > 59:
        return None
    return f"{reader.clock(start_hour, start_minute)} {reader.r.range_word} {reader.clock(end_hour, end_minute)}"


def hours_cue(lang: str, previous: str, following: str) -> bool:
    """Whether a word next to a pair of numbers says they are opening or working hours ("open 9-5",
    "9-5 daily", "9-5 pm"), so that a pair going down across noon is a range."""
    return previous in _HOURS_BEFORE.get(lang, ()) or following.lower() in _HOURS_AFTER.get(lang, ())


def wraps_at_noon(low: int, high: int) -> bool:
    """"9-5", "12-1", "10-6": a start and an end on the twelve-hour clock, the end after noon."""
    return 1 <= high < low <= _LATEST_HOUR
