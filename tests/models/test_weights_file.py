"""Why a weights file does not load, in words (``models/weights_file.py``); the kinds of file are tested through
the importer (tests/models/imports/test_dekr_import.py) and the checkpoint loader (test_checkpoint.py)."""
from models.weights_file import _clip


def test_a_long_reason_is_cut_between_words_and_says_so():
    text = ("Weights could not be read because the archive member named data.pkl ends before its last "
            "opcode was found anywhere. More text follows on the next line\nand more")
    clipped = _clip(text, limit=60)
    assert clipped.endswith("...") and len(clipped) <= 63 and text.startswith(clipped[:-3])
    assert text[len(clipped) - 3] == " "  # the cut falls between words
    assert _clip("Short reason. Second sentence") == "Short reason"
