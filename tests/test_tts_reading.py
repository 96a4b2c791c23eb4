"""Numbers read aloud by the TTS front end (tts/reading.py): real outputs per language, no input that
raises, the corpus speller's words for plain integers, and Speaker.sentences using the reader."""

from __future__ import annotations

import random
import time

import pytest

from tts_helpers import tiny_tts_folder
from voxkit.data.text import LANGUAGES, spell_numbers
from voxkit.errors import DataError
from voxkit.tts.api import Speaker
from voxkit.tts.reading import _READINGS, read_aloud

CASES: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("I have 3 cats.", "I have three cats."),
        ("1,500 people", "one thousand five hundred people"),
        ("1,500,000 votes", "one million five hundred thousand votes"),
        ("2.5 kg", "two point five kilograms"),
        ("It costs 10.05 now", "It costs ten point zero five now"),
        ("the 1st, 2nd, 3rd, 4th and 21st", "the first, second, third, fourth and twenty-first"),
        ("the 1,000th visitor", "the one thousandth visitor"),
        ("-5 and −5 and +3", "minus five and minus five and plus three"),
        ("10% or 10 % or 2.5%", "ten percent or ten percent or two point five percent"),
        ("$5", "five dollars"),
        ("$1", "one dollar"),
        ("€2.50", "two euros and fifty cents"),
        ("€1", "one euro"),
        ("$0.50", "fifty cents"),
        ("£3.01", "three pounds sterling and one penny"),
        ("$1,500.50", "one thousand five hundred dollars and fifty cents"),
        ("-$5", "minus five dollars"),
        ("$5 million", "five million dollars"),
        ("5 $", "five dollars"),
        ("in 1999", "in nineteen ninety-nine"),
        ("since 1905", "since nineteen oh-five"),
        ("1999 people", "one thousand nine hundred and ninety-nine people"),
        ("2000 people", "two thousand people"),
        ("in 2024", "in two thousand and twenty-four"),
        ("the 1990s and the 80s", "the nineteen nineties and the eighties"),
        ("at 3:30", "at three thirty"),
        ("at 3:05", "at three oh five"),
        ("at 12:00", "at twelve o'clock"),
        ("at 15:00", "at fifteen hundred"),
        ("version 1.2.3", "version one point two point three"),
        ("call 555-1234", "call five five five one two three four"),
        ("agent 007", "agent zero zero seven"),
        ("id 12345678901", "id one two three four five six seven eight nine zero one"),
        ("A4 paper, 5km, 3x", "A four paper, five kilometers, three x"),
        ("COVID-19", "COVID-nineteen"),
        ("1,5", "one, five"),
        ("It was 5.", "It was five."),
        # ranges: up, without a leading zero; a hyphen between numbers of about as many digits
        ("pages 3-5 and 10–12", "pages three to five and ten to twelve"),
        ("9-10 or 95-100 people", "nine to ten or ninety-five to one hundred people"),
        ("10-20% and $5-10", "ten to twenty percent and five to ten dollars"),
        ("2.5-3.5 kg", "two point five to three point five kilograms"),
        ("from 1990-1999 and from 1990-2024",
         "from nineteen ninety to nineteen ninety-nine and from nineteen ninety to twenty twenty-four"),
        ("won 3-1 on 05-03", "won three one on zero five zero three"),  # down: a score; a leading zero: a date
        # simple fractions, denominators up to ten
        ("1/2, 3/4, 2/3, 5/8, 1/10", "one half, three quarters, two thirds, five eighths, one tenth"),
        ("24/7, 9/11, 3/2", "twenty-four seven, nine eleven, three two"),
        # units
        ("5 km, 1 km, 1.5 km, 20 kg, 200 g, 5 cm, 3 mm", "five kilometers, one kilometer, one point five kilometers, twenty kilograms, "
         "two hundred grams, five centimeters, three millimeters"),
        ("3 h, 1 h, 10 min, 30 s", "three hours, one hour, ten minutes, thirty seconds"),
        ("5 m or 5m", "five meters or five meters"),
        ("20 °C, 20°C, -1 °C, 70 °F, 90°", "twenty degrees Celsius, twenty degrees Celsius, minus one degree Celsius, "
         "seventy degrees Fahrenheit, ninety degrees"),
        ("50 km/h, 3-5 km", "fifty kilometers per hour, three to five kilometers"),
        ("5 m/s, 1/2 kg, $5m, in 1500 m", "five m/s, one half kg, five dollars m, in one thousand five hundred meters"),
    ],
    "fr": [
        ("1 500 euros", "mille cinq cents euros"),
        ("1\u00a0500 et 1\u202f500\u202f000", "mille cinq cents et un million cinq cent mille"),
        ("2,5 kg", "deux virgule cinq kilogrammes"),
        ("le 1er, la 1re, la 1ère, le 2e", "le premier, la première, la première, le deuxième"),
        ("le 3ème, les 2es", "le troisième, les deuxièmes"),
        ("le 2nd, la 2nde, le 21e, le 1ᵉʳ", "le second, la seconde, le vingt et unième, le premier"),
        ("10 % et 10%", "dix pour cent et dix pour cent"),
        ("-5 et +3", "moins cinq et plus trois"),
        ("5 €", "cinq euros"),
        ("1 €", "un euro"),
        ("2,50 €", "deux euros et cinquante centimes"),
        ("€5", "cinq euros"),
        ("5 millions €", "cinq millions d'euros"),
        ("$3 millions", "trois millions de dollars"),
        ("à 15h30", "à quinze heures trente"),
        ("1h et 3 h", "une heure et trois heures"),
        ("21:15", "vingt et une heures quinze"),
        ("1:00", "une heure"),
        ("en 1999", "en mille neuf cent quatre-vingt-dix-neuf"),
        ("3-5 ans, 1-2 jours, 3-5 h", "trois à cinq ans, un à deux jours, trois à cinq heures"),
        ("1/2, 1/3, 2/3, 3/4, 2/5", "un demi, un tiers, deux tiers, trois quarts, deux cinquièmes"),
        ("1 min, 21 min, 30 s, 5 km", "une minute, vingt et une minutes, trente secondes, cinq kilomètres"),
        ("1,5 km, 20 °C, 0 °C", "un virgule cinq kilomètre, vingt degrés Celsius, zéro degré Celsius"),  # below two: singular
    ],
    "es": [
        ("1.500 personas", "mil quinientos personas"),
        ("2,5 kg", "dos coma cinco kilogramos"),
        ("2.5 kg", "dos punto cinco kg"),
        ("el 1º, la 1ª, el 3.º, las 1.as", "el primero, la primera, el tercero, las primeras"),
        ("el 1.er piso y el 3er día", "el primer piso y el tercer día"),
        ("10 %", "diez por ciento"),
        ("-5", "menos cinco"),
        ("5 €", "cinco euros"),
        ("2,50 €", "dos euros con cincuenta céntimos"),
        ("1 $", "un dólar"),
        ("$1.000.000", "un millón de dólares"),
        ("$5 millones", "cinco millones de dólares"),
        ("a las 3:30", "a las tres y treinta"),
        ("a la 1:00", "a la una en punto"),
        ("21:00", "veintiuna en punto"),
        ("3-5 años", "tres a cinco años"),
        ("1/2, 1/3, 2/3, 3/4, 2/5", "un medio, un tercio, dos tercios, tres cuartos, dos quintos"),
        ("1 h, 21 h, 1 km, 21 km, 20 ºC", "una hora, veintiuna horas, un kilómetro, veintiún kilómetros, veinte grados Celsius"),
    ],
    "de": [
        ("1.500 Menschen", "eintausendfünfhundert Menschen"),
        ("2,5 kg", "zwei Komma fünf Kilogramm"),
        ("am 3. Mai", "am dritten Mai"),
        ("der 3. Platz", "der dritte Platz"),
        ("Ich zähle bis 3. Dann gehe ich.", "Ich zähle bis drei. Dann gehe ich."),
        ("Er kam am 1. Januar 1999.", "Er kam am ersten Januar neunzehnhundertneunundneunzig."),
        ("im Jahr 1999", "im Jahr neunzehnhundertneunundneunzig"),
        ("1999 Menschen", "eintausendneunhundertneunundneunzig Menschen"),
        ("10 %", "zehn Prozent"),
        ("−5", "minus fünf"),
        ("5 €", "fünf Euro"),
        ("1 €", "ein Euro"),
        ("2,50 €", "zwei Euro und fünfzig Cent"),
        ("$5 Millionen", "fünf Millionen Dollar"),
        ("um 1:00", "um ein Uhr"),
        ("um 3:30", "um drei Uhr dreißig"),
        ("Version 1.2.3", "Version eins Punkt zwei Punkt drei"),
        ("1-2 Tage, 3–5 km", "ein bis zwei Tage, drei bis fünf Kilometer"),
        ("von 1990-1999", "von neunzehnhundertneunzig bis neunzehnhundertneunundneunzig"),
        ("1/2, 2/3, 3/4, 1/5, 1/8", "ein halb, zwei Drittel, drei Viertel, ein Fünftel, ein Achtel"),
        ("1 h, 2 h, 1 min, 1 km, 20 °C", "eine Stunde, zwei Stunden, eine Minute, ein Kilometer, zwanzig Grad Celsius"),
    ],
    "it": [("3-5 e 1/2", "tre cinque e uno due"),  # no range, fraction or unit rules here: digit groups
           ("1.500", "millecinquecento"), ("2,5", "due virgola cinque"), ("1º e 1ª", "primo e prima"), ("-5", "meno cinque"),
           ("2,50 €", "due euro e cinquanta centesimi"), ("3:30", "tre e trenta")],
    "pt": [("1.500", "mil e quinhentos"), ("2,5", "dois vírgula cinco"), ("1º e 1ª", "primeiro e primeira"), ("$1", "um dólar"),
           ("2,50 €", "dois euros e cinquenta cêntimos"), ("1:30", "uma e trinta")],
    "nl": [("1.500", "duizendvijfhonderd"), ("2,5", "twee komma vijf"), ("1e, 2de, 8ste", "eerste, tweede, achtste"),
           ("2,50 €", "twee euro en vijftig cent"), ("3:30", "drie uur dertig")],
    "pl": [("1 500", "tysiąc pięćset"), ("2,5", "dwa przecinek pięć"), ("10 %", "dziesięć procent"), ("5 €", "pięć euro"),
           ("£5", "pięć £"), ("3.", "trzy.")],
}


@pytest.mark.parametrize(("lang", "text", "spoken"), [(lang, text, spoken) for lang, cases in CASES.items() for text, spoken in cases])
def test_numbers_are_read_as_the_language_says_them(lang: str, text: str, spoken: str) -> None:
    assert read_aloud(text, lang) == spoken


def test_every_language_of_the_text_kit_has_a_reading() -> None:
    assert set(_READINGS) == set(LANGUAGES)
    with pytest.raises(DataError):
        read_aloud("5", "xx")


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_plain_integers_read_as_the_corpus_speller_wrote_them(lang: str) -> None:
    """The model learnt numbers from spell_numbers' text: a plain integer gets the very same words."""
    rng = random.Random(lang)
    for value in [0, 1, 7, 21, 99, 100, 101, 1000, 1001, 2500, 123456, 9999999] + [rng.randrange(10**7) for _ in range(50)]:
        text = f"Il y a {value} choses"  # no year cue, no ordinal mark, no currency
        assert read_aloud(text, lang) == spell_numbers(text, lang)


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_no_input_raises_and_no_ascii_digit_is_left(lang: str) -> None:
    rng = random.Random(f"fuzz-{lang}")
    alphabet = "0123456789" * 4 + ".,:;/-–+−$€£%  \u00a0\u202fºªᵉʳˢ°hsterndèa'()\n" + "٣３" + "kgmiCF"
    started = time.perf_counter()
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))
        said = read_aloud(text, lang)
        assert isinstance(said, str) and not any(c in "0123456789" for c in said), (text, said)
    for text in ["9" * 5000, "1," + ",".join(["000"] * 200), "$" + "9" * 40 + ".999", "0." + "5" * 3000, "−−+-5%%", "12:60:99"]:
        said = read_aloud(text, lang)
        assert not any(c in "0123456789" for c in said), (text, said[:80])
    assert time.perf_counter() - started < 30


@pytest.fixture(scope="module")
def speaker(tmp_path_factory: pytest.TempPathFactory) -> Speaker:
    return Speaker.from_pretrained(tiny_tts_folder(tmp_path_factory.mktemp("tts")))


def test_sentences_read_numbers_aloud(speaker: Speaker) -> None:
    assert speaker.sentences("It costs $1,500.50. That is 10% more!") == [
        "It costs one thousand five hundred dollars and fifty cents.", "That is ten percent more!"]
    assert speaker.sentences("Il est né le 1er mai. Il a 2,5 ans.", "fr") == ["Il est né le premier mai.", "Il a deux virgule cinq ans."]


def test_sentences_keep_digits_in_a_language_the_text_kit_does_not_know() -> None:
    class Stub:  # sentences() reads nothing of the model but its languages
        languages = ["ja"]

    assert Speaker.sentences(Stub(), "It costs $5.") == ["It costs $5."]  # type: ignore[arg-type]


def test_sentences_of_plain_text_are_unchanged(speaker: Speaker) -> None:
    assert speaker.sentences("No numbers here. None at all.") == ["No numbers here.", "None at all."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Kapitel 1-3.", "Kapitel eins bis drei."),
        ("Seite 1-2 zeigt es.", "Seite eins bis zwei zeigt es."),
        ("Es dauert 1-2 Tage.", "Es dauert ein bis zwei Tage."),
    ],
)
def test_a_german_range_says_ein_only_before_a_noun(text: str, expected: str) -> None:
    assert read_aloud(text, "de") == expected
