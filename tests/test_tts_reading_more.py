"""More of what the TTS front end reads aloud (tts/reading.py, tts/reading_forms.py): ISO dates,
opening hours and clock ranges, vulgar fractions ("½", "1½") and the number sign ("#1", "#voxkit"),
with the pairs, dates and marks that must stay as they were read before."""

from __future__ import annotations

import random
import unicodedata

import pytest

from voxkit.data.text import LANGUAGES
from voxkit.tts.reading import read_aloud

CASES: dict[str, list[tuple[str, str]]] = {
    "en": [
        # a pair going down is a range next to a word about hours (twelve-hour clock, across noon)
        ("open 9-5 daily", "open nine to five daily"),
        ("Opening hours: Mon-Fri 9-5, Sat 10-2", "Opening hours: Mon-Fri nine to five, Sat ten to two"),
        ("closed 12-1 for lunch", "closed twelve to one for lunch"),
        ("9–5 weekdays, 9-5pm", "nine to five weekdays, nine to five pm"),
        # two clock times, in either order
        ("open 9:00-17:00", "open nine o'clock to seventeen hundred"),
        ("9:30–5:30", "nine thirty to five thirty"),
        # ISO dates
        ("on 2024-01-15", "on January fifteenth, twenty twenty-four"),
        ("1999-12-31 and 2024-02-29", "December thirty-first, nineteen ninety-nine and February twenty-ninth, twenty twenty-four"),
        ("2005-03-01.", "March first, two thousand and five."),
        # vulgar fractions, as "1/2" is read; after a whole number, a mixed number
        ("½ cup, ¼, ¾, ⅓, ⅔, ⅛, ⅝, ⅒", "one half cup, one quarter, three quarters, one third, two thirds, one eighth, five eighths, "
         "one tenth"),
        ("1½ cups, 2 ¾ cups, 1⅛, 3⅓, 2⅔", "one and a half cups, two and three quarters cups, one and an eighth, three and a third, "
         "two and two thirds"),
        ("$10 ½", "ten dollars one half"),  # the amount is the reader's, not a mixed number's
        # the number sign
        ("#1 hit", "number one hit"),
        ("#voxkit is #21 (#1 in 2024)", "voxkit is number twenty-one (number one in two thousand and twenty-four)"),
    ],
    "fr": [
        ("le 2024-01-15", "le quinze janvier deux mille vingt-quatre"),
        ("le 2024-01-01", "le premier janvier deux mille vingt-quatre"),
        ("de 9:00-17:00", "de neuf heures à dix-sept heures"),
        ("½ tasse, ¼, ¾, ⅓, ⅔, ⅛", "un demi tasse, un quart, trois quarts, un tiers, deux tiers, un huitième"),
        ("1½, 2¾, 1⅓", "un et demi, deux et trois quarts, un et un tiers"),
        ("le #1 des ventes", "le numéro un des ventes"),
    ],
    "es": [
        ("el 2024-01-15", "el quince de enero de dos mil veinticuatro"),
        ("2024-03-01", "uno de marzo de dos mil veinticuatro"),
        ("de 9:00-17:30", "de nueve en punto a diecisiete y treinta"),
        ("½ taza, ¼, ¾, ⅓, ⅔, ⅛", "un medio taza, un cuarto, tres cuartos, un tercio, dos tercios, un octavo"),
        ("1½, 2¾, 1⅓", "uno y medio, dos y tres cuartos, uno y un tercio"),
        ("el #1", "el número uno"),
    ],
    "de": [
        ("am 2024-01-15", "am fünfzehnten Januar zweitausendvierundzwanzig"),
        ("der 2024-05-03", "der dritte Mai zweitausendvierundzwanzig"),
        ("Berlin, 2024-01-15", "Berlin, fünfzehnten Januar zweitausendvierundzwanzig"),
        # the same day written out reads the same: before a month the day takes "-n"
        ("Berlin, 15. Januar 1999", "Berlin, fünfzehnten Januar neunzehnhundertneunundneunzig"),
        ("von 9:00-17:30", "von neun Uhr bis siebzehn Uhr dreißig"),
        ("½ Tasse, ¼, ¾, ⅓, ⅔, ⅛", "ein halb Tasse, ein Viertel, drei Viertel, ein Drittel, zwei Drittel, ein Achtel"),
        ("1½, 2¾, 1⅓, 21½", "eineinhalb, zweidreiviertel, eineindrittel, einundzwanzigeinhalb"),
        ("die #1", "die Nummer eins"),
    ],
}

VULGAR = [c for c in map(chr, [*range(0xBC, 0xBF), *range(0x2150, 0x215F)]) if unicodedata.normalize("NFKC", c)[-1].isdigit()]


@pytest.mark.parametrize(("lang", "text", "spoken"), [(lang, text, spoken) for lang, cases in CASES.items() for text, spoken in cases])
def test_dates_hours_fractions_and_number_signs_are_read(lang: str, text: str, spoken: str) -> None:
    assert read_aloud(text, lang) == spoken


def test_a_pair_going_down_is_a_range_only_for_hours() -> None:
    """"open 9-5" is opening hours; without a word about hours a pair going down stays a score, and one
    that no twelve-hour clock has ("15-9") stays two numbers even there."""
    assert read_aloud("open 9-5", "en") == "open nine to five"
    assert read_aloud("won 9-5 and 3-1, open 15-9", "en") == "won nine five and three one, open fifteen nine"
    assert read_aloud("lost 1-2", "en") == "lost one to two"  # the documented limit: a score going up reads as a range
    assert read_aloud("Sunday, 10-2", "en") == "Sunday, ten two"  # a full day name is no cue: a match report
    # French, Spanish and German write opening hours on the 24-hour clock, which go up: a range already
    assert read_aloud("ouvert 9-5, ouvert 9-17 h", "fr") == "ouvert neuf cinq, ouvert neuf à dix-sept heures"
    assert read_aloud("abierto 9-17", "es") == "abierto nueve a diecisiete"
    assert read_aloud("geöffnet 9-17 Uhr", "de") == "geöffnet neun bis siebzehn Uhr"


@pytest.mark.parametrize(("lang", "february"), [("en", "February"), ("fr", "février"), ("es", "febrero"), ("de", "Februar")])
def test_only_a_day_of_the_calendar_is_read_as_a_date(lang: str, february: str) -> None:
    """2024-02-29 is a day; 2023-02-29, 2024-13-45, 2024-00-10, 2024-1-15 and 0999-01-01 are no ISO
    days and keep the digit-group reading, with no month said."""
    assert february in read_aloud("2024-02-29", lang)
    for text in ["2023-02-29", "2024-13-45", "2024-00-10", "2024-1-15", "0999-01-01"]:
        said = read_aloud(text, lang)
        assert february not in said and "janu" not in said.lower() and "enero" not in said and "janvier" not in said, (text, said)


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_a_vulgar_fraction_reads_as_the_same_fraction_with_a_slash(lang: str) -> None:
    """"½" says what "1/2" says in every language, digits included where a language has no fraction
    words; a hashtag loses its mark and "#1" reads as the language's "number" before the number."""
    for char in VULGAR:
        written = unicodedata.normalize("NFKC", char).replace("\u2044", "/")
        assert read_aloud(f"a {char} b", lang) == read_aloud(f"a {written} b", lang), char
    said = read_aloud("#voxkit #1", lang)
    assert said.startswith("voxkit ") and said.endswith(read_aloud("1", lang)) and "#" not in said, said
    assert read_aloud("C# and F#, # Title, &#38;", lang).count("#") == 4


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_no_digit_no_vulgar_fraction_and_no_number_sign_is_left(lang: str) -> None:
    rng = random.Random(f"marks-{lang}")
    alphabet = "0123456789" * 4 + "-–:/. ,#" * 2 + "".join(VULGAR) + "abcxyz"
    for _ in range(1000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 30)))
        said = read_aloud(text, lang)
        assert not any(c in "0123456789" or c in VULGAR for c in said), (text, said)


UNITS_AFTER_FRACTIONS: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("10½%, 10.5%", "ten and a half percent, ten point five percent"),
        ("2½ km, 2.5 km", "two and a half kilometers, two point five kilometers"),
        ("1½ kg, 2½°C, 3¼ h, 1½ s", "one and a half kilograms, two and a half degrees Celsius, three and a quarter hours, "
         "one and a half seconds"),
        ("½ km, ¾ kg, ½°, ½ %", "one half kilometer, three quarters kilogram, one half degree, one half percent"),
        ("2½ m/s, ½ cup", "two and a half m/s, one half cup"),  # a compound unit or a word stays as written
    ],
    "fr": [
        ("2½ km, 1½ km, ½ km", "deux et demi kilomètres, un et demi kilomètre, un demi kilomètre"),
        ("10½ %, 2½ °C", "dix et demi pour cent, deux et demi degrés Celsius"),
    ],
    "es": [
        ("2½ km, ½ km", "dos y medio kilómetros, un medio kilómetro"),
        ("10½%, 2½°C", "diez y medio por ciento, dos y medio grados Celsius"),
    ],
    "de": [
        ("2½ km, ½ km, 1½ h", "zweieinhalb Kilometer, ein halb Kilometer, eineinhalb Stunden"),
        ("10½ %, 2½°C", "zehneinhalb Prozent, zweieinhalb Grad Celsius"),
    ],
}


@pytest.mark.parametrize(("lang", "text", "spoken"),
                         [(lang, text, spoken) for lang, cases in UNITS_AFTER_FRACTIONS.items() for text, spoken in cases])
def test_a_unit_or_percent_sign_after_a_vulgar_fraction_is_read(lang: str, text: str, spoken: str) -> None:
    """What follows "½" or "2½" is read as after a number: a percent sign, a unit's name (singular
    after a fraction alone, after a mixed number as after a decimal), a degree sign."""
    assert read_aloud(text, lang) == spoken


@pytest.mark.parametrize("lang", ["en", "fr", "es", "de"])
def test_vulgar_fractions_side_by_side_are_one_space_apart(lang: str) -> None:
    half = read_aloud("½", lang)
    assert read_aloud("½½", lang) == f"{half} {half}"
    assert read_aloud("1½½", lang) == f"{read_aloud('1½', lang)} {half}"


@pytest.mark.parametrize("lang", ["it", "pt", "nl", "pl"])
def test_without_fraction_words_a_vulgar_fraction_reads_as_its_digits_with_a_slash(lang: str) -> None:
    """No fraction words: "½" is left as "1/2" is, and what follows it as what follows "1/2"."""
    assert read_aloud("½, 2½ km, ½%, ½½", lang) == read_aloud("1/2, 2 1/2 km, 1/2%, 1/2 1/2", lang)
