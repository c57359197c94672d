"""A small generated German-English corpus for the embedded default run (``gio-spark run --demo``).

Four domains (medicine, law, software, everyday talk) built from parallel sentence templates
and slot fillers; the pool mixes all four, the target is medicine only, so a good selection
is mostly medical.
"""
from __future__ import annotations

import random
from typing import Any

from .job import storage

# (english template, german template); {a} and {b} are filled from the domain's slots
DOMAINS: dict[str, dict[str, Any]] = {
    "medicine": {
        "templates": [
            ("Take {a} tablets of {b} every day with water.", "Nehmen Sie täglich {a} Tabletten {b} mit Wasser ein."),
            ("Tell your doctor if you have {b} before you take this medicine.", "Informieren Sie Ihren Arzt, wenn Sie {b} haben, bevor Sie dieses Arzneimittel einnehmen."),
            ("Common side effects of {b} include headache and nausea.", "Häufige Nebenwirkungen von {b} sind Kopfschmerzen und Übelkeit."),
            ("Do not use {b} if you are allergic to the active substance.", "Wenden Sie {b} nicht an, wenn Sie allergisch gegen den Wirkstoff sind."),
            ("The recommended dose is {a} mg per kilogram of body weight.", "Die empfohlene Dosis beträgt {a} mg pro Kilogramm Körpergewicht."),
            ("Store {b} below 25 degrees in the original package.", "Lagern Sie {b} unter 25 Grad in der Originalverpackung."),
        ],
        "a": ["one", "two", "three", "four", "five", "ten", "twenty"],
        "b": ["ibuprofen", "insulin", "the vaccine", "this injection", "the capsules", "kidney disease", "diabetes", "high blood pressure"],
    },
    "law": {
        "templates": [
            ("Article {a} of the regulation shall apply from {b}.", "Artikel {a} der Verordnung gilt ab dem {b}."),
            ("The Member States shall notify the Commission by {b}.", "Die Mitgliedstaaten teilen dies der Kommission bis zum {b} mit."),
            ("This decision is addressed to the Member States under article {a}.", "Diese Entscheidung ist gemäß Artikel {a} an die Mitgliedstaaten gerichtet."),
            ("The committee shall adopt its rules of procedure by {b}.", "Der Ausschuss gibt sich bis zum {b} eine Geschäftsordnung."),
            ("Paragraph {a} shall be replaced by the following text.", "Absatz {a} erhält folgende Fassung."),
        ],
        "a": ["1", "2", "3", "5", "7", "12", "28"],
        "b": ["1 January 2004", "30 June 2010", "31 December 2008", "1 March 2012", "15 May 2006"],
    },
    "software": {
        "templates": [
            ("Click {b} to save the current {a}.", "Klicken Sie auf {b}, um die aktuelle {a} zu speichern."),
            ("The {a} could not be opened.", "Die {a} konnte nicht geöffnet werden."),
            ("Select a {a} from the list and press {b}.", "Wählen Sie eine {a} aus der Liste und drücken Sie {b}."),
            ("Show hidden {a} in the sidebar", "Versteckte {a} in der Seitenleiste anzeigen"),
            ("Error while loading the {a} settings", "Fehler beim Laden der {a}-Einstellungen"),
        ],
        "a": ["file", "folder", "window", "session", "configuration", "toolbar"],
        "b": ["OK", "Apply", "Cancel", "Save", "Next"],
    },
    "talk": {
        "templates": [
            ("Where were you last {b}?", "Wo warst du letzten {b}?"),
            ("I told you to call me before {a}.", "Ich habe dir gesagt, du sollst mich vor {a} anrufen."),
            ("We need to get out of here, {b}!", "Wir müssen hier raus, {b}!"),
            ("Do you really think {a} is coming back?", "Glaubst du wirklich, dass {a} zurückkommt?"),
            ("Come on, it is only {a}.", "Komm schon, es ist nur {a}."),
        ],
        "a": ["Jack", "your brother", "the old man", "midnight", "eight o'clock", "a game"],
        "b": ["night", "Monday", "week", "Sarah", "now", "come on"],
    },
}


def generate(domain: str, n: int, seed: int) -> list[tuple[str, str]]:
    """n (english, german) pairs from one domain."""
    spec = DOMAINS[domain]
    rng = random.Random(f"{domain}-{seed}")
    pairs = []
    for _ in range(n):
        en, de = rng.choice(spec["templates"])
        a, b = rng.choice(spec["a"]), rng.choice(spec["b"])
        pairs.append((en.format(a=a, b=b), de.format(a=a, b=b)))
    return pairs


def write_demo_corpus(folder: str, per_domain: int = 300, target_size: int = 120) -> dict[str, str]:
    """Write train.{en,de} (all domains, shuffled) and target.{en,de} (medicine) under folder."""
    pool = [p for d in DOMAINS for p in generate(d, per_domain, seed=1)]
    random.Random(7).shuffle(pool)
    target = generate("medicine", target_size, seed=2)
    for name, rows in (("train", pool), ("target", target)):
        storage.write_text(storage.join(folder, f"{name}.en"), "".join(en + "\n" for en, _ in rows))
        storage.write_text(storage.join(folder, f"{name}.de"), "".join(de + "\n" for _, de in rows))
    return {"train": storage.join(folder, "train"), "target": storage.join(folder, "target")}


def demo_config(output: str) -> dict[str, Any]:
    """Config overrides of the demo run (dotted keys)."""
    data = storage.join(output, "_demo_data")
    return {
        "train.path": storage.join(data, "train"),
        "target.path": storage.join(data, "target"),
        "src_lang": "en",
        "tgt_lang": "de",
        "output": output,
        "if_exists": "overwrite",
        "quantize.k": 60,
        "gio.max_iter": 40,
        "gio.stop_criterion": "increase",
    }
