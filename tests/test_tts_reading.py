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
        ("2.5 kg", "two point five kg"),
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
        ("A4 paper, 5km", "A four paper, five km"),
        ("COVID-19", "COVID-nineteen"),
        ("1,5", "one, five"),
        ("It was 5.", "It was five."),
    ],
    "fr": [
        ("1 500 euros", "mille cinq cents euros"),
        ("1\u00a0500 et 1\u202f500\u202f000", "mille cinq cents et un million cinq cent mille"),
        ("2,5 kg", "deux virgule cinq kg"),
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
    ],
    "es": [
        ("1.500 personas", "mil quinientos personas"),
        ("2,5 kg", "dos coma cinco kg"),
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
    ],
    "de": [
        ("1.500 Menschen", "eintausendfünfhundert Menschen"),
        ("2,5 kg", "zwei Komma fünf kg"),
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
    ],
    "it": [("1.500", "millecinquecento"), ("2,5", "due virgola cinque"), ("1º e 1ª", "primo e prima"), ("-5", "meno cinque"),
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
    alphabet = "0123456789" * 4 + ".,:;/-+−$€£%  \u00a0\u202fºªᵉʳˢ°hsterndèa'()\n" + "٣３"
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
