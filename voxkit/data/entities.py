"""Entity-rich template sentences: names, places, numbers, years, dates and times.

Why: fortunes and man pages rarely contain the things users dictate (names, amounts, dates), and a
recogniser only learns to write them if it hears them. Values come from faker's locale data (names,
cities) and num2words (numbers spelled the way they are spoken); every generated sentence still
passes :func:`voxkit.data.text.clean_sentence`, so the same transcript rules hold.
"""

from __future__ import annotations

import random

from voxkit.data.text import clean_sentence, dedupe, language_spec

_MONTHS = {
    "en": "January February March April May June July August September October November December",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre",
    "pt": "janeiro fevereiro março abril maio junho julho agosto setembro outubro novembro dezembro",
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
    "pl": "stycznia lutego marca kwietnia maja czerwca lipca sierpnia września października listopada grudnia",
}
_WEEKDAYS = {
    "en": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
    "fr": "lundi mardi mercredi jeudi vendredi samedi dimanche",
    "es": "lunes martes miércoles jueves viernes sábado domingo",
    "de": "Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag",
    "it": "lunedì martedì mercoledì giovedì venerdì sabato domenica",
    "pt": "segunda sexta sábado domingo terça quarta quinta",
    "nl": "maandag dinsdag woensdag donderdag vrijdag zaterdag zondag",
    "pl": "poniedziałek wtorek środę czwartek piątek sobotę niedzielę",
}
_TEMPLATES = {
    "en": [
        "{name} was born in {city} on {month} {dayo}, {year}.",
        "The meeting with {name} starts at {hour} o'clock in {city}.",
        "{name} paid {n} dollars for {m} tickets to {city}.",
        "On {weekday}, {name} and {name2} drove from {city} to {city2}.",
        "Please call {name} before {hour} o'clock on {weekday}.",
        "The population of {city} grew to {big} people in {year}.",
        "Order number {big} was shipped to {name} on {month} {dayo}.",
    ],
    "fr": [
        "{name} est né à {city} le {day} {month} {year}.",
        "Le rendez-vous avec {name} commence à {hour} heures à {city}.",
        "{name} a payé {n} euros pour {m} billets de train.",
        "{weekday}, {name} et {name2} sont allés de {city} à {city2}.",
        "La ville de {city} comptait {big} habitants en {year}.",
        "La commande numéro {big} a été envoyée à {name} le {day} {month}.",
    ],
    "es": [
        "{name} nació en {city} el {day} de {month} de {year}.",
        "La reunión con {name} empieza a las {hour} en {city}.",
        "{name} pagó {n} euros por {m} entradas.",
        "El {weekday}, {name} y {name2} viajaron de {city} a {city2}.",
        "La población de {city} llegó a {big} habitantes en {year}.",
        "El pedido número {big} se envió a {name} el {day} de {month}.",
    ],
    "de": [
        "{name} wurde am {dayo}n {month} {year} in {city} geboren.",
        "Das Treffen mit {name} beginnt um {hour} Uhr in {city}.",
        "{name} hat {n} Euro für {m} Eintrittskarten bezahlt.",
        "Am {weekday} fuhren {name} und {name2} von {city} nach {city2}.",
        "Die Stadt {city} hatte im Jahr {year} genau {big} Einwohner.",
        "Die Bestellung Nummer {big} ging am {dayo}n {month} an {name}.",
    ],
    "it": [
        "{name} è nato a {city} il {day} {month} {year}.",
        "La riunione con {name} comincia alle {hour} a {city}.",
        "{name} ha pagato {n} euro per {m} biglietti.",
        "Di {weekday} {name} e {name2} sono andati da {city} a {city2}.",
        "Nel {year} la città di {city} aveva {big} abitanti.",
        "L'ordine numero {big} è stato spedito a {name} il {day} {month}.",
    ],
    "pt": [
        "{name} nasceu em {city} no dia {day} de {month} de {year}.",
        "A reunião com {name} começa às {hour} horas em {city}.",
        "{name} pagou {n} reais por {m} ingressos.",
        "Na {weekday}, {name} e {name2} foram de {city} para {city2}.",
        "A população de {city} chegou a {big} pessoas em {year}.",
        "O pedido número {big} foi enviado para {name} no dia {day} de {month}.",
    ],
    "nl": [
        "{name} is op {day} {month} {year} in {city} geboren.",
        "De afspraak met {name} begint om {hour} uur in {city}.",
        "{name} betaalde {n} euro voor {m} kaartjes.",
        "Op {weekday} reden {name} en {name2} van {city} naar {city2}.",
        "In {year} had {city} precies {big} inwoners.",
        "Bestelling nummer {big} is op {day} {month} naar {name} gestuurd.",
    ],
    "pl": [
        "{name} urodził się w mieście {city} w roku {year}.",
        "Spotkanie z osobą {name} zaczyna się o godzinie {hour}.",
        "{name} zapłacił {n} złotych za bilety do miasta {city}.",
        "W {weekday} {name} i {name2} pojechali z miasta {city} do miasta {city2}.",
        "Miasto {city} miało w roku {year} dokładnie {big} mieszkańców.",
        "Zamówienie numer {big} wysłano dnia {day} {month} do osoby {name}.",
    ],
}


def entity_sentences(lang: str, count: int, seed: int) -> list[str]:
    """Up to ``count`` distinct, clean entity-rich sentences for ``lang`` (deterministic by seed)."""
    from faker import Faker
    from num2words import num2words

    spec = language_spec(lang)
    fake = Faker(spec.faker)
    fake.seed_instance(seed)
    rng = random.Random(f"entities-{lang}-{seed}")
    # Some locales (it_IT) build city() from a set, so its draws change with PYTHONHASHSEED; pick
    # from the sorted static list when the provider has one, with our own seeded generator.
    providers = [p for g in fake.factories for p in g.providers]
    static_cities = sorted({c for p in providers for c in (getattr(p, "cities", None) or []) if isinstance(c, str)})
    months, weekdays, templates = _MONTHS[lang].split(), _WEEKDAYS[lang].split(), _TEMPLATES[lang]

    def words(n: int, **kw: str) -> str:
        return num2words(n, lang=spec.num2words, **kw).replace(",", "")

    out: list[str] = []
    for _ in range(count * 3):
        if len(out) >= count:
            break
        day = rng.randint(1, 28)
        values = {
            "name": f"{fake.first_name()} {fake.last_name()}",
            "name2": fake.first_name(),
            "city": rng.choice(static_cities) if static_cities else fake.city(),
            "city2": rng.choice(static_cities) if static_cities else fake.city(),
            "month": rng.choice(months),
            "weekday": rng.choice(weekdays),
            "day": words(day),
            "dayo": words(day, to="ordinal"),
            "year": words(rng.randint(1900, 2030), to="year"),
            "hour": words(rng.randint(1, 12)),
            "n": words(rng.choice([rng.randint(2, 99), rng.randint(100, 999), rng.randint(1000, 9999)])),
            "m": words(rng.randint(2, 12)),
            "big": words(rng.randint(10_000, 999_999)),
        }
        s = clean_sentence(rng.choice(templates).format(**values), lang, min_words=4, max_words=30)
        if s:
            out.append(s)
    return dedupe(out)[:count]
