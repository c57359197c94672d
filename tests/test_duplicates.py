"""Which pool texts duplicate a target text (no Spark)."""
from gio_spark.job.duplicates import EXACT, ONE_WORD, TargetTexts

LONG = "Tell your doctor if you have kidney disease before you take this medicine."
SHORT = "Regular expression to match:"


def known(*texts):
    t = TargetTexts()
    for x in texts:
        t.add(x)
    return t


def test_exact_after_case_and_white_space():
    t = known(LONG, SHORT)
    assert t.match(LONG) == EXACT
    assert t.match("  tell your DOCTOR if you have\tkidney disease before you take this medicine. ") == EXACT
    assert t.match("regular   EXPRESSION to match:") == EXACT
    assert t.match("") is None and t.match(None) is None


def test_one_word_replaced_added_or_dropped_in_long_texts():
    t = known(LONG)
    assert t.match(LONG.replace("kidney", "liver")) == ONE_WORD
    assert t.match(LONG.replace("this medicine", "this new medicine")) == ONE_WORD
    assert t.match(LONG.replace("kidney ", "")) == ONE_WORD
    assert t.match(LONG.replace("kidney disease", "liver problems")) is None  # two words
    assert t.match("Take two tablets of ibuprofen every day with water.") is None


def test_short_texts_match_exactly_only():
    t = known(SHORT)
    assert t.match("Regular expression to replace:") is None
    assert t.match("Regular expression:") is None
    five = known("Regular expression to match digits:")
    assert five.match("Regular expression to match all digits:") is None  # a word added to 5 words
    assert five.match("Regular expression to digits:") is None


def test_keys_are_the_same_in_every_process():
    import subprocess
    import sys

    code = ("from gio_spark.job.duplicates import TargetTexts; t = TargetTexts(); t.add(%r); "
            "print(sorted(t.full)[0], len(t.at))" % LONG)
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout for seed in ("1", "2")}
    assert len(outs) == 1 and outs != {""}
