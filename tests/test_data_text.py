"""Sentence cleaning, spoken words, dedup and text splits."""

from voxkit.data.entities import entity_sentences
from voxkit.data.text import (
    LANGUAGES,
    clean_sentence,
    dedupe,
    natural_sentences,
    spoken_words,
    text_split,
    token_spans,
    wordnet_definitions,
    wordnet_examples,
)


def test_spoken_words_strip_edge_punctuation():
    text = "«Où êtes-vous?» L'homme — était là."
    assert spoken_words(text) == ["Où", "êtes-vous", "L'homme", "était", "là"]
    spans = token_spans(text)
    assert [text[a:b] for a, b, _ in spans] == spoken_words(text)


def test_clean_sentence_rules():
    assert clean_sentence("The quick brown fox jumps over the lazy dog.", "en")
    assert clean_sentence("See http://example.com for the details now.", "en") is None
    assert clean_sentence("The NASA team landed on the moon today.", "en") is None  # acronym
    assert clean_sentence("Use the -r option to recurse into folders.", "en") is None
    assert clean_sentence("Mr. Smith went to the market today.", "en") is None  # abbreviation
    assert clean_sentence("Too short.", "en") is None
    assert clean_sentence("Der schnelle braune Fuchs springt über den Hund.", "de")
    assert clean_sentence("This English sentence is not German at all.", "de") is None
    # Numbers are spelled out so the transcript says what espeak speaks.
    s = clean_sentence("We bought 3 apples and 12 pears at the market.", "en")
    assert s == "We bought three apples and twelve pears at the market."
    assert clean_sentence("Version 2.5 of the program is out now.", "en") is None


def test_dedupe_and_split_are_deterministic():
    sents = ["Hello there, my good friend.", "hello there my good friend!", "Another one bites the dust."]
    assert dedupe(sents) == [sents[0], sents[2]]
    fr = {"train": 0.8, "dev": 0.1, "test": 0.1}
    assert text_split(sents[0], fr) == text_split(sents[1], fr)  # same words, same split
    assert [text_split(f"Sentence number {i} here.", fr) for i in range(50)] == [
        text_split(f"Sentence number {i} here.", fr) for i in range(50)
    ]


def test_sources_give_thousands_of_sentences():
    en = natural_sentences("en")
    assert len(en) > 5000
    assert all(clean_sentence(s, "en") == s for s in en[:200])


def test_entity_sentences_every_language():
    for lang in LANGUAGES:
        sents = entity_sentences(lang, 30, seed=1)
        assert len(sents) >= 20, lang
        assert not any(c.isdigit() for s in sents for c in s)
        assert sents == entity_sentences(lang, 30, seed=1)


def test_wordnet_examples_become_sentences(tmp_path):
    data = tmp_path / "data.noun"
    data.write_text(
        "  1 This software and database is being provided to you, the LICENSEE\n"
        "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived to exist\n"
        '02084071 05 n 02 dog 0 domestic_dog 0 | a member of the genus Canis; "the dog barked all night"\n'
        '07566340 13 n 01 meal 0 | the food served; "she prepared a three course meal"; "a light meal"\n'
        '00000001 00 v 01 go 0 | move; "go away!"; "2 days later"\n'
    )
    got = list(wordnet_examples(str(data)))
    assert got == ["The dog barked all night.", "She prepared a three course meal.", "A light meal.", "Go away!"]
    assert clean_sentence(got[0], "en") == got[0]
    assert clean_sentence(got[2], "en") is None  # too short for the corpus


def test_wordnet_definitions_become_sentences(tmp_path):
    data = tmp_path / "data.noun"
    data.write_text(
        "  1 This software and database is being provided to you, the LICENSEE\n"
        "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived to exist\n"
        '02084071 05 n 02 dog 0 domestic_dog 0 | a member of the genus Canis; "the dog barked all night"\n'
        '04233124 06 n 01 sink 0 | a board beside a kitchen sink; inclined to drain; "a; b"\n'
    )
    got = list(wordnet_definitions(str(data)))
    assert got == [
        "That which is perceived to exist.",
        "A member of the genus Canis.",
        "A board beside a kitchen sink.",
        "Inclined to drain.",
    ]


def test_english_pool_includes_wordnet():
    # scripts/setup.sh installs wordnet-base (scripts/apt-packages.txt).
    pool = set(natural_sentences("en"))
    assert "The dog barked all night." in pool  # a usage example
    assert "A board beside a kitchen sink and inclined to drain into the sink." in pool  # a definition


def test_english_pool_includes_books():
    # dict-devil, display-dhammapada and sword-text-web (scripts/apt-packages.txt), read by voxkit.data.books.
    pool = set(natural_sentences("en"))
    assert "A statement or belief manifestly inconsistent with one's own opinion." in pool  # Bierce
    assert "Overcome anger with freedom from anger." in pool  # Dhammapada
    assert "David reigned over all Israel; and David executed justice and righteousness for all his people." in pool  # WEB
    assert "Communism is the exploitation of the strong by the weak." in pool  # fortune-anarchism
