"""Rebuild ``names.csv`` (surname, origin) from the surname lists in Faker (MIT licence).

Not imported by rnnkit: it documents, and can repeat, how the shipped file was made.
Run with Faker importable, e.g.::

    pip download faker==40.54.0 --no-deps -d /tmp/fk && (cd /tmp/fk && unzip -q faker-*.whl)
    PYTHONPATH=/tmp/fk python rnnkit/data/datasets/names/build_names.py rnnkit/data/datasets/names/names.csv

What it does, and why:
- Reads the surname lists of the Faker locales below and labels each surname with the
  language/country of its locale (several locales of one language are merged).
- Cyrillic (Russian, Ukrainian) and Greek surnames are romanised with a simple fixed
  letter table, as the PyTorch tutorial's names data is romanised.
- Keeps names made of letters, spaces, hyphens and apostrophes only (drops "Koch II",
  "Bourgondië, van"), strips whitespace, removes duplicates within a label.
- Drops every surname that occurs under two or more labels (Novak: Czech, Slovenian,
  Croatian...): such a name has no single right answer, so it would only add label noise.
"""
from __future__ import annotations

import csv
import importlib
import sys
import unicodedata

# label -> [(faker locale, attribute names)]
SOURCES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "English": [(loc, ("last_names",)) for loc in ("en_US", "en_GB", "en_NZ", "en")],
    "Irish": [("en_IE", ("last_names",))],
    "German": [(loc, ("last_names",)) for loc in ("de_DE", "de_AT", "de_CH", "de_LI", "de_LU")],
    "French": [(loc, ("last_names",)) for loc in ("fr_FR", "fr_BE", "fr_CH", "fr_CA")],
    "Italian": [("it_IT", ("last_names",))],
    "Spanish": [(loc, ("last_names",)) for loc in ("es_ES", "es_MX", "es_AR", "es_CL", "es_CO")],
    "Portuguese": [(loc, ("last_names",)) for loc in ("pt_PT", "pt_BR")],
    "Dutch": [(loc, ("last_names",)) for loc in ("nl_NL", "nl_BE")],
    "Polish": [("pl_PL", ("unisex_last_names", "male_last_names"))],
    "Czech": [("cs_CZ", ("last_names",))],
    "Slovak": [("sk_SK", ("last_names",))],
    "Croatian": [("hr_HR", ("last_names",))],
    "Slovenian": [("sl_SI", ("last_names",))],
    "Hungarian": [("hu_HU", ("last_names",))],
    "Finnish": [("fi_FI", ("last_names",))],
    "Estonian": [("et_EE", ("last_names",))],
    "Latvian": [("lv_LV", ("last_names",))],
    "Swedish": [("sv_SE", ("last_names",))],
    "Norwegian": [("no_NO", ("last_names",))],
    "Danish": [("da_DK", ("last_names",))],
    "Turkish": [("tr_TR", ("last_names",))],
    "Indonesian": [("id_ID", ("last_names",))],
    "Indian": [("en_IN", ("last_names",))],
    "Kenyan": [("en_KE", ("last_names",))],
    "Yoruba": [("yo_NG", ("last_names",))],
    "Zulu": [("zu_ZA", ("last_names",))],
    "Chinese": [("zh_CN", ("last_romanized_names",))],
    "Japanese": [("ja_JP", ("last_romanized_names",))],
    "Russian": [("ru_RU", ("last_names",))],
    "Ukrainian": [("uk_UA", ("last_names",))],
    "Greek": [("el_GR", ("last_names",))],
}

_CYR = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюяєіїґ",
                ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s",
                 "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya", "ye", "i", "yi", "g"]))
_UK_OVERRIDES = {"г": "h", "и": "y", "х": "kh"}  # Ukrainian national romanisation differs from Russian here
_GRK = dict(zip("αβγδεζηθικλμνξοπρσςτυφχψω",
                ["a", "v", "g", "d", "e", "z", "i", "th", "i", "k", "l", "m", "n", "x", "o", "p", "r", "s", "s",
                 "t", "y", "f", "ch", "ps", "o"]))


def romanise(name: str, table: dict[str, str]) -> str:
    """Letter-by-letter romanisation; keeps the capital of the first letter."""
    base = unicodedata.normalize("NFD", name)
    base = "".join(c for c in base if unicodedata.category(c) != "Mn")  # Greek tonos, Cyrillic breve
    out = []
    for c in base:
        low = c.lower()
        r = table.get(low, c)
        out.append(r.capitalize() if c != low else r)
    return "".join(out).replace("'", "")


def _clean(name: str) -> str | None:
    name = " ".join(name.split())
    if not name or any(not (c.isalpha() or c in " -'") for c in name):
        return None
    if any(tok.isupper() and len(tok) > 1 for tok in name.split()):  # "Koch II"
        return None
    return name


def build() -> list[tuple[str, str]]:
    by_label: dict[str, set[str]] = {}
    for label, sources in SOURCES.items():
        names: set[str] = set()
        for locale, attrs in sources:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
            for attr in attrs:
                for raw in provider.__dict__[attr]:
                    if label == "Russian":
                        raw = romanise(raw, _CYR)
                    elif label == "Ukrainian":
                        raw = romanise(raw, {**_CYR, **_UK_OVERRIDES})
                    elif label == "Greek":
                        raw = romanise(raw, _GRK)
                    name = _clean(raw)
                    if name:
                        names.add(name)
        by_label[label] = names
    count: dict[str, int] = {}
    for names in by_label.values():
        for n in names:
            count[n] = count.get(n, 0) + 1
    return sorted((n, label) for label, names in by_label.items() for n in names if count[n] == 1)


if __name__ == "__main__":
    rows = build()
    with open(sys.argv[1], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["name", "origin"])
        w.writerows(rows)
    print(f"{len(rows)} names written to {sys.argv[1]}")
