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
            ("Take {n} tablets of {drug} every day with {drink}.", "Nehmen Sie täglich {n} Tabletten {drug} mit {drink} ein."),
            ("Tell your doctor if you have {cond} before you take {drug}.",
             "Informieren Sie Ihren Arzt, wenn Sie {cond} haben, bevor Sie {drug} einnehmen."),
            ("Common side effects of {drug} include {effect}.", "Häufige Nebenwirkungen von {drug} sind {effect}."),
            ("Do not use {drug} if you are allergic to {substance}.",
             "Wenden Sie {drug} nicht an, wenn Sie allergisch gegen {substance} sind."),
            ("The recommended dose of {drug} is {mg} mg per kilogram of body weight.",
             "Die empfohlene Dosis von {drug} beträgt {mg} mg pro Kilogramm Körpergewicht."),
            ("Store {drug} below {deg} degrees in the original package.",
             "Lagern Sie {drug} unter {deg} Grad in der Originalverpackung."),
        ],
        "n": [("two", "zwei"), ("three", "drei"), ("four", "vier"), ("five", "fünf"), ("six", "sechs"), ("ten", "zehn")],
        "drug": [("ibuprofen", "Ibuprofen"), ("insulin", "Insulin"), ("paracetamol", "Paracetamol"),
                 ("metformin", "Metformin"), ("aspirin", "Aspirin"), ("amoxicillin", "Amoxicillin"),
                 ("ramipril", "Ramipril"), ("simvastatin", "Simvastatin")],
        "drink": [("water", "Wasser"), ("milk", "Milch"), ("a meal", "einer Mahlzeit"), ("juice", "Saft")],
        "cond": [("kidney disease", "eine Nierenerkrankung"), ("diabetes", "Diabetes"),
                 ("high blood pressure", "hohen Blutdruck"), ("asthma", "Asthma"), ("liver problems", "Leberprobleme"),
                 ("heart failure", "eine Herzschwäche")],
        "effect": [("headache and nausea", "Kopfschmerzen und Übelkeit"), ("dizziness and fatigue", "Schwindel und Müdigkeit"),
                   ("rash and itching", "Ausschlag und Juckreiz"), ("diarrhoea and vomiting", "Durchfall und Erbrechen")],
        "substance": [("the active substance", "den Wirkstoff"), ("lactose", "Laktose"), ("penicillin", "Penicillin"),
                      ("any of the other ingredients", "einen der sonstigen Bestandteile")],
        "mg": [(x, x) for x in ("1", "2", "5", "10", "20", "40")],
        "deg": [(x, x) for x in ("8", "25", "30", "15")],
    },
    "law": {
        "templates": [
            ("Article {art} of the regulation shall apply from {date}.", "Artikel {art} der Verordnung gilt ab dem {date}."),
            ("The Member States shall notify the {body} by {date}.",
             "Die Mitgliedstaaten teilen dies der {body} bis zum {date} mit."),
            ("This decision is addressed to the {who} under article {art}.",
             "Diese Entscheidung ist gemäß Artikel {art} an die {who} gerichtet."),
            ("The {group} shall adopt its rules of procedure by {date}.",
             "Der {group} gibt sich bis zum {date} eine Geschäftsordnung."),
            ("Paragraph {art} of article {art2} shall be replaced by the following text.",
             "Absatz {art} des Artikels {art2} erhält folgende Fassung."),
        ],
        "art": [(x, x) for x in ("1", "2", "3", "5", "7", "12", "28")],
        "art2": [(x, x) for x in ("4", "6", "9", "14", "19", "33")],
        "date": [("1 January 2004", "1. Januar 2004"), ("30 June 2010", "30. Juni 2010"),
                 ("31 December 2008", "31. Dezember 2008"), ("1 March 2012", "1. März 2012"), ("15 May 2006", "15. Mai 2006"),
                 ("1 July 2015", "1. Juli 2015")],
        "body": [("Commission", "Kommission"), ("Council", "Rat"), ("Court of Auditors", "Rechnungshof"),
                 ("European Central Bank", "Europäischen Zentralbank")],
        "who": [("Member States", "Mitgliedstaaten"), ("applicants", "Antragsteller"), ("producers", "Erzeuger"),
                ("importers", "Einführer")],
        "group": [("committee", "Ausschuss"), ("board", "Verwaltungsrat"), ("panel", "Beirat"), ("council", "Rat")],
    },
    "software": {
        "templates": [
            ("Click {button} to save the current {item}.", "Klicken Sie auf {button}, um die aktuelle {item} zu speichern."),
            ("The {item} could not be opened because {why}.", "Die {item} konnte nicht geöffnet werden, weil {why}."),
            ("Select a {item} from the list and press {button}.", "Wählen Sie eine {item} aus der Liste und drücken Sie {button}."),
            ("Show hidden {items} in the {place}", "Versteckte {items} in der {place} anzeigen"),
            ("Error while loading the {item} settings from {source}", "Fehler beim Laden der Einstellungen der {item} aus {source}"),
        ],
        "item": [("file", "Datei"), ("session", "Sitzung"), ("configuration", "Konfiguration"), ("toolbar", "Symbolleiste"),
                 ("page", "Seite"), ("selection", "Auswahl")],
        "items": [("files", "Dateien"), ("folders", "Ordner"), ("windows", "Fenster"), ("toolbars", "Symbolleisten")],
        "button": [("OK", "OK"), ("Apply", "Übernehmen"), ("Cancel", "Abbrechen"), ("Save", "Speichern"), ("Next", "Weiter")],
        "why": [("it is locked", "sie gesperrt ist"), ("access was denied", "der Zugriff verweigert wurde"),
                ("the disk is full", "der Datenträger voll ist"), ("it was deleted", "sie gelöscht wurde")],
        "place": [("sidebar", "Seitenleiste"), ("file list", "Dateiliste"), ("menu bar", "Menüleiste"), ("status bar", "Statusleiste")],
        "source": [("the server", "dem Server"), ("the cache", "dem Zwischenspeicher"), ("the network", "dem Netzwerk"),
                   ("the backup", "der Sicherung")],
    },
    "talk": {
        "templates": [
            ("Where were you {when}, {name}?", "Wo warst du {when}, {name}?"),
            ("I told you to call me before {time}, {name}.", "Ich habe dir gesagt, du sollst mich vor {time} anrufen, {name}."),
            ("We need to get out of here {when2}, {name}!", "Wir müssen {when2} hier raus, {name}!"),
            ("Do you really think {who} is coming back {when2}?", "Glaubst du wirklich, dass {who} {when2} zurückkommt?"),
            ("Come on, it is only {thing}, {name}.", "Komm schon, es ist nur {thing}, {name}."),
        ],
        "when": [("last night", "letzte Nacht"), ("on Monday", "am Montag"), ("last week", "letzte Woche"),
                 ("yesterday", "gestern")],
        "when2": [("now", "jetzt"), ("tonight", "heute Nacht"), ("soon", "bald"), ("tomorrow", "morgen")],
        "time": [("midnight", "Mitternacht"), ("eight o'clock", "acht Uhr"), ("noon", "Mittag"), ("dinner", "dem Abendessen")],
        "name": [("Sarah", "Sarah"), ("Tom", "Tom"), ("guys", "Leute"), ("Jack", "Jack"), ("Mum", "Mama"), ("Dad", "Papa")],
        "who": [("Jack", "Jack"), ("your brother", "dein Bruder"), ("the old man", "der alte Mann"), ("she", "sie")],
        "thing": [("a game", "ein Spiel"), ("a dream", "ein Traum"), ("one night", "eine Nacht"), ("a joke", "ein Witz")],
    },
}


def _slots(template: str) -> list[str]:
    return sorted({name for _, name, _, _ in string.Formatter().parse(template) if name})


def generate(domain: str, n: int, seed: int, half: int = -1) -> list[tuple[str, str]]:
    """n (english, german) pairs from one domain; ``half`` 0 or 1 uses every other filler of each
    slot only (two halves never share a filler, so their sentences differ in two slots or more)."""
    spec = DOMAINS[domain]
    rng = random.Random(f"{domain}-{seed}")
    pairs = []
    for _ in range(n):
        en, de = rng.choice(spec["templates"])
        fill = {slot: rng.choice(spec[slot] if half < 0 else spec[slot][half::2]) for slot in _slots(en)}
        pairs.append((en.format(**{k: v[0] for k, v in fill.items()}), de.format(**{k: v[1] for k, v in fill.items()})))
    return pairs


def write_demo_corpus(fs, folder: str, per_domain: int = 300, target_size: int = 120) -> dict[str, str]:
    """Write train.{en,de} (all domains, shuffled) and target.{en,de} (medicine) under folder,
    through ``fs`` (the job's FileSystem)."""
    pool = [p for d in DOMAINS for p in generate(d, per_domain, seed=1, half=0)]
    random.Random(7).shuffle(pool)
    target = generate("medicine", target_size, seed=2, half=1)  # like the pool's medicine, never a copy of it
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
