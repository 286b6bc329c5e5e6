"""The easy QA set: questions a small model answers right about half the time, to evaluate scores
where right and wrong answers are both common (the hard NQ-open splits are ~95 % wrong).

Four families, built deterministically (``python -m services.evaluation.easyqa`` rewrites the files):
capitals of countries, arithmetic on numbers up to 20, the number after another, and everyday facts. Each family is split
into dev (fit) and test (report) halves by a fixed shuffle; the files are
``services/evaluation/datasets/easy-qa-{dev,test}.jsonl`` in NQ-open format. Written for this project;
no third-party data.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DATA = Path(__file__).resolve().parent / "datasets"

CAPITALS = {
    "France": ["Paris"], "Germany": ["Berlin"], "Italy": ["Rome"], "Spain": ["Madrid"],
    "Portugal": ["Lisbon"], "the United Kingdom": ["London"], "Ireland": ["Dublin"],
    "Belgium": ["Brussels"], "the Netherlands": ["Amsterdam"], "Austria": ["Vienna"],
    "Switzerland": ["Bern", "Berne"], "Poland": ["Warsaw"], "Czechia": ["Prague"], "Hungary": ["Budapest"],
    "Greece": ["Athens"], "Sweden": ["Stockholm"], "Norway": ["Oslo"], "Denmark": ["Copenhagen"],
    "Finland": ["Helsinki"], "Iceland": ["Reykjavik", "Reykjavík"], "Russia": ["Moscow"],
    "Ukraine": ["Kyiv", "Kiev"], "Romania": ["Bucharest"], "Bulgaria": ["Sofia"], "Serbia": ["Belgrade"],
    "Croatia": ["Zagreb"], "Turkey": ["Ankara"], "Egypt": ["Cairo"], "Kenya": ["Nairobi"],
    "Nigeria": ["Abuja"], "Ethiopia": ["Addis Ababa"], "Ghana": ["Accra"], "Morocco": ["Rabat"],
    "Algeria": ["Algiers"], "Tunisia": ["Tunis"], "Senegal": ["Dakar"], "Uganda": ["Kampala"],
    "Zimbabwe": ["Harare"], "Japan": ["Tokyo"], "China": ["Beijing", "Peking"],
    "South Korea": ["Seoul"], "North Korea": ["Pyongyang"], "India": ["New Delhi", "Delhi"],
    "Pakistan": ["Islamabad"], "Bangladesh": ["Dhaka"], "Nepal": ["Kathmandu"], "Thailand": ["Bangkok"],
    "Vietnam": ["Hanoi"], "Indonesia": ["Jakarta"], "the Philippines": ["Manila"], "Malaysia": ["Kuala Lumpur"],
    "Iran": ["Tehran"], "Iraq": ["Baghdad"], "Saudi Arabia": ["Riyadh"], "Israel": ["Jerusalem"],
    "Jordan": ["Amman"], "Lebanon": ["Beirut"], "Syria": ["Damascus"], "Afghanistan": ["Kabul"],
    "Qatar": ["Doha"], "Mongolia": ["Ulaanbaatar", "Ulan Bator"], "Australia": ["Canberra"],
    "New Zealand": ["Wellington"], "Canada": ["Ottawa"], "the United States": ["Washington"],
    "Mexico": ["Mexico City"], "Cuba": ["Havana"], "Jamaica": ["Kingston"], "Brazil": ["Brasilia", "Brasília"],
    "Argentina": ["Buenos Aires"], "Chile": ["Santiago"], "Peru": ["Lima"], "Colombia": ["Bogota", "Bogotá"],
    "Venezuela": ["Caracas"], "Ecuador": ["Quito"], "Uruguay": ["Montevideo"], "Paraguay": ["Asuncion", "Asunción"],
    "Bolivia": ["Sucre", "La Paz"], "Panama": ["Panama City"], "Costa Rica": ["San Jose", "San José"],
    "Nicaragua": ["Managua"], "Honduras": ["Tegucigalpa"], "Guatemala": ["Guatemala City"],
    "Lithuania": ["Vilnius"], "Latvia": ["Riga"], "Estonia": ["Tallinn"], "Slovakia": ["Bratislava"],
    "Slovenia": ["Ljubljana"], "Albania": ["Tirana"], "Armenia": ["Yerevan"], "Georgia": ["Tbilisi"],
    "Azerbaijan": ["Baku"], "Kazakhstan": ["Astana"], "Uzbekistan": ["Tashkent"], "Sri Lanka": ["Colombo", "Sri Jayawardenepura Kotte"],
    "Myanmar": ["Naypyidaw", "Nay Pyi Taw"], "Cambodia": ["Phnom Penh"], "Laos": ["Vientiane"],
    "Libya": ["Tripoli"], "Sudan": ["Khartoum"], "Angola": ["Luanda"], "Tanzania": ["Dodoma"],
    "South Africa": ["Pretoria", "Cape Town"], "Madagascar": ["Antananarivo"], "Mali": ["Bamako"],
}  # fmt: skip

NUMBERS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]

FACTS = [
    ("what color is the sky on a clear day", ["blue"]),
    ("what color is grass", ["green"]),
    ("what color is snow", ["white"]),
    ("what color are ripe bananas", ["yellow"]),
    ("what is the opposite of hot", ["cold"]),
    ("what is the opposite of up", ["down"]),
    ("what is the opposite of day", ["night"]),
    ("what is the opposite of big", ["small", "little"]),
    ("what is the opposite of fast", ["slow"]),
    ("what is the opposite of happy", ["sad", "unhappy"]),
    ("what day comes after monday", ["Tuesday"]),
    ("what day comes after friday", ["Saturday"]),
    ("what day comes before sunday", ["Saturday"]),
    ("what month comes after january", ["February"]),
    ("what month comes after june", ["July"]),
    ("what month comes before december", ["November"]),
    ("how many days are in a week", ["seven", "7"]),
    ("how many months are in a year", ["twelve", "12"]),
    ("how many hours are in a day", ["twenty-four", "24", "twenty four"]),
    ("how many minutes are in an hour", ["sixty", "60"]),
    ("how many legs does a dog have", ["four", "4"]),
    ("how many legs does a bird have", ["two", "2"]),
    ("how many wheels does a bicycle have", ["two", "2"]),
    ("how many sides does a triangle have", ["three", "3"]),
    ("how many sides does a square have", ["four", "4"]),
    ("what animal says meow", ["cat", "cats", "a cat"]),
    ("what animal says moo", ["cow", "cows"]),
    ("what animal barks", ["dog", "dogs"]),
    ("what is frozen water called", ["ice"]),
    ("what gas do humans breathe in to live", ["oxygen"]),
    ("what planet do we live on", ["Earth"]),
    ("what is the largest planet in the solar system", ["Jupiter"]),
    ("what star is at the center of our solar system", ["the Sun", "Sun"]),
    ("what is the closest planet to the sun", ["Mercury"]),
    ("which planet is known as the red planet", ["Mars"]),
    ("what is the largest ocean on earth", ["Pacific", "Pacific Ocean"]),
    ("what is the tallest mountain in the world", ["Mount Everest", "Everest"]),
    ("what is the longest river in africa", ["Nile", "the Nile"]),
    ("who wrote hamlet", ["Shakespeare", "William Shakespeare"]),
    ("who painted the mona lisa", ["Leonardo da Vinci", "Leonardo", "da Vinci"]),
    ("who was the first president of the united states", ["George Washington", "Washington"]),
    ("what language is spoken in brazil", ["Portuguese"]),
    ("what language is spoken in mexico", ["Spanish"]),
    ("what language is spoken in germany", ["German"]),
    ("what is the currency of japan", ["yen", "Japanese yen"]),
    ("what is the currency of the united kingdom", ["pound", "pound sterling", "pounds"]),
    ("what do bees make", ["honey"]),
    ("what do caterpillars turn into", ["butterflies", "butterfly", "moths", "moth"]),
    ("what is the boiling point of water in celsius", ["100", "100 degrees", "one hundred"]),
    ("what is the freezing point of water in celsius", ["0", "zero", "0 degrees"]),
    ("what is the chemical symbol for water", ["H2O"]),
    ("what is the chemical symbol for gold", ["Au"]),
    ("what is the largest mammal", ["blue whale", "whale"]),
    ("what is the fastest land animal", ["cheetah"]),
    ("what fruit keeps the doctor away", ["apple", "an apple"]),
    ("what season comes after winter", ["spring"]),
    ("what season comes after summer", ["autumn", "fall"]),
    ("what is the first letter of the english alphabet", ["A"]),
    ("what is the last letter of the english alphabet", ["Z"]),
    ("how many continents are there", ["seven", "7"]),
]


def items() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for country, capitals in CAPITALS.items():
        out.append({"question": f"what is the capital of {country}", "answer": capitals, "family": "capital"})
    rng = random.Random(2026)
    pairs: set[tuple[int, str, int]] = set()
    while len(pairs) < 300:
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        op = rng.choice("+-x")
        if op == "-" and a < b:
            a, b = b, a
        pairs.add((a, op, b))
    for a, op, b in sorted(pairs):
        value = a + b if op == "+" else a - b if op == "-" else a * b
        words = {"+": "plus", "-": "minus", "x": "times"}[op]
        answers = [str(value)] + ([NUMBERS[value]] if value < len(NUMBERS) else [])
        out.append({"question": f"what is {a} {words} {b}", "answer": answers, "family": "arithmetic"})
    for n in sorted(rng.sample(range(1, 100), 90)):
        answers = [str(n + 1)] + ([NUMBERS[n + 1]] if n + 1 < len(NUMBERS) else [])
        out.append({"question": f"what number comes after {n}", "answer": answers, "family": "successor"})
    for question, answers in FACTS:
        out.append({"question": question, "answer": answers, "family": "fact"})
    return out


def split(all_items: list[dict[str, object]]) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Half of each family to dev, half to test, by a fixed shuffle."""
    dev, test = [], []
    rng = random.Random(7)
    for family in ("capital", "arithmetic", "successor", "fact"):
        group = [i for i in all_items if i["family"] == family]
        rng.shuffle(group)
        dev += group[: len(group) // 2]
        test += group[len(group) // 2 :]
    return dev, test


def main() -> None:
    dev, test = split(items())
    DATA.mkdir(exist_ok=True)
    for name, rows in (("dev", dev), ("test", test)):
        path = DATA / f"easy-qa-{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"wrote {path} ({len(rows)} questions)")


if __name__ == "__main__":
    main()
