"""A small generated German-English corpus for the embedded default run (``gio-spark run --demo``).

Four domains (medicine, law, software, everyday talk) built from parallel sentence templates
whose slots are filled with parallel phrases, so both sides read as real translations; the
pool mixes all four, the target is medicine only, so a good selection is mostly medical.
"""
from __future__ import annotations

import random
import string
from typing import Any

# per domain: (english, german) templates, and for each {slot} its (english, german) fillers
DOMAINS: dict[str, dict[str, Any]] = {
    "medicine": {
        "templates": [
            ("Take {n} tablets of {drug} every day with water.", "Nehmen Sie täglich {n} Tabletten {drug} mit Wasser ein."),
            ("Tell your doctor if you have {cond} before you take this medicine.",
             "Informieren Sie Ihren Arzt, wenn Sie {cond} haben, bevor Sie dieses Arzneimittel einnehmen."),
            ("Common side effects of {drug} include headache and nausea.",
             "Häufige Nebenwirkungen von {drug} sind Kopfschmerzen und Übelkeit."),
            ("Do not use {drug} if you are allergic to the active substance.",
             "Wenden Sie {drug} nicht an, wenn Sie allergisch gegen den Wirkstoff sind."),
            ("The recommended dose is {mg} mg per kilogram of body weight.",
             "Die empfohlene Dosis beträgt {mg} mg pro Kilogramm Körpergewicht."),
            ("Store {drug} below 25 degrees in the original package.", "Lagern Sie {drug} unter 25 Grad in der Originalverpackung."),
        ],
        "n": [("two", "zwei"), ("three", "drei"), ("four", "vier"), ("five", "fünf"), ("ten", "zehn")],
        "drug": [("ibuprofen", "Ibuprofen"), ("insulin", "Insulin"), ("paracetamol", "Paracetamol"),
                 ("metformin", "Metformin"), ("aspirin", "Aspirin"), ("amoxicillin", "Amoxicillin")],
        "cond": [("kidney disease", "eine Nierenerkrankung"), ("diabetes", "Diabetes"),
                 ("high blood pressure", "hohen Blutdruck"), ("asthma", "Asthma"), ("liver problems", "Leberprobleme")],
        "mg": [(x, x) for x in ("1", "2", "5", "10", "20")],
    },
    "law": {
        "templates": [
            ("Article {art} of the regulation shall apply from {date}.", "Artikel {art} der Verordnung gilt ab dem {date}."),
            ("The Member States shall notify the Commission by {date}.",
             "Die Mitgliedstaaten teilen dies der Kommission bis zum {date} mit."),
            ("This decision is addressed to the Member States under article {art}.",
             "Diese Entscheidung ist gemäß Artikel {art} an die Mitgliedstaaten gerichtet."),
            ("The committee shall adopt its rules of procedure by {date}.",
             "Der Ausschuss gibt sich bis zum {date} eine Geschäftsordnung."),
            ("Paragraph {art} shall be replaced by the following text.", "Absatz {art} erhält folgende Fassung."),
        ],
        "art": [(x, x) for x in ("1", "2", "3", "5", "7", "12", "28")],
        "date": [("1 January 2004", "1. Januar 2004"), ("30 June 2010", "30. Juni 2010"),
                 ("31 December 2008", "31. Dezember 2008"), ("1 March 2012", "1. März 2012"), ("15 May 2006", "15. Mai 2006")],
    },
    "software": {
        "templates": [
            ("Click {button} to save the current {item}.", "Klicken Sie auf {button}, um die aktuelle {item} zu speichern."),
            ("The {item} could not be opened.", "Die {item} konnte nicht geöffnet werden."),
            ("Select a {item} from the list and press {button}.", "Wählen Sie eine {item} aus der Liste und drücken Sie {button}."),
            ("Show hidden {items} in the sidebar", "Versteckte {items} in der Seitenleiste anzeigen"),
            ("Error while loading the {item} settings", "Fehler beim Laden der Einstellungen der {item}"),
        ],
        "item": [("file", "Datei"), ("session", "Sitzung"), ("configuration", "Konfiguration"), ("toolbar", "Symbolleiste"),
                 ("page", "Seite")],
        "items": [("files", "Dateien"), ("folders", "Ordner"), ("windows", "Fenster"), ("toolbars", "Symbolleisten")],
        "button": [("OK", "OK"), ("Apply", "Übernehmen"), ("Cancel", "Abbrechen"), ("Save", "Speichern"), ("Next", "Weiter")],
    },
    "talk": {
        "templates": [
            ("Where were you {when}?", "Wo warst du {when}?"),
            ("I told you to call me before {time}.", "Ich habe dir gesagt, du sollst mich vor {time} anrufen."),
            ("We need to get out of here, {name}!", "Wir müssen hier raus, {name}!"),
            ("Do you really think {who} is coming back?", "Glaubst du wirklich, dass {who} zurückkommt?"),
            ("Come on, it is only {thing}.", "Komm schon, es ist nur {thing}."),
        ],
        "when": [("last night", "letzte Nacht"), ("on Monday", "am Montag"), ("last week", "letzte Woche"),
                 ("yesterday", "gestern")],
        "time": [("midnight", "Mitternacht"), ("eight o'clock", "acht Uhr"), ("noon", "Mittag")],
        "name": [("Sarah", "Sarah"), ("Tom", "Tom"), ("guys", "Leute")],
        "who": [("Jack", "Jack"), ("your brother", "dein Bruder"), ("the old man", "der alte Mann")],
        "thing": [("a game", "ein Spiel"), ("a dream", "ein Traum"), ("one night", "eine Nacht")],
    },
}


def _slots(template: str) -> list[str]:
    return sorted({name for _, name, _, _ in string.Formatter().parse(template) if name})


def generate(domain: str, n: int, seed: int) -> list[tuple[str, str]]:
    """n (english, german) pairs from one domain."""
    spec = DOMAINS[domain]
    rng = random.Random(f"{domain}-{seed}")
    pairs = []
    for _ in range(n):
        en, de = rng.choice(spec["templates"])
        fill = {slot: rng.choice(spec[slot]) for slot in _slots(en)}
        pairs.append((en.format(**{k: v[0] for k, v in fill.items()}), de.format(**{k: v[1] for k, v in fill.items()})))
    return pairs


def write_demo_corpus(fs, folder: str, per_domain: int = 300, target_size: int = 120) -> dict[str, str]:
    """Write train.{en,de} (all domains, shuffled) and target.{en,de} (medicine) under folder,
    through ``fs`` (the job's FileSystem)."""
    pool = [p for d in DOMAINS for p in generate(d, per_domain, seed=1)]
    random.Random(7).shuffle(pool)
    target = generate("medicine", target_size, seed=2)
    out = {}
    for name, rows in (("train", pool), ("target", target)):
        fs.write_text(f"{folder}/{name}.en", "".join(en + "\n" for en, _ in rows))
        fs.write_text(f"{folder}/{name}.de", "".join(de + "\n" for _, de in rows))
        out[name] = f"{folder}/{name}"
    return out


def demo_config(output: str) -> dict[str, Any]:
    """Config overrides of the demo run (dotted keys)."""
    data = f"{output.rstrip('/')}/_demo_data"
    return {
        "train.path": f"{data}/train",
        "target.path": f"{data}/target",
        "src_lang": "en",
        "tgt_lang": "de",
        "output": output,
        "if_exists": "overwrite",
        "quantize.k": 60,
        "gio.max_iter": 40,
        "gio.stop_criterion": "increase",
    }
