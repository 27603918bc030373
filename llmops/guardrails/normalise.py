"""Text normalisation for the rule-based checks: what a text says once its disguises are taken off.

`fold(text)` gives the form the injection and banned-word patterns match: NFKC (full-width and
mathematical letters become plain ones), invisible characters dropped, Cyrillic and Greek look-alikes
read as the Latin letters they imitate, lower case, leetspeak undone inside words ("1gn0r3" -> "ignore")
and spaced-out letters joined ("i g n o r e" -> "ignore"). It also reports which disguises it removed:
a disguise is itself a signal.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Format and control characters that render as nothing: zero-width spaces and joiners, word joiner,
# invisible operators, BOM, soft hyphen, Mongolian vowel separator, bidirectional embeddings, overrides and
# isolates ("Trojan Source"), and the Unicode tag block that can smuggle a whole ASCII text invisibly.
INVISIBLE = re.compile(
    "[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]"
)
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
TAG_CHARACTERS = re.compile("[\U000e0000-\U000e007f]")
ZERO_WIDTH_JOINER = "\u200d"
VARIATION_SELECTOR_16 = "\ufe0f"

# Letters of other scripts drawn like Latin ones (Unicode's confusables.txt, the ones that matter in
# Latin-script text).
CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "\u0430": "a", "\u0432": "b", "\u0435": "e", "\u0451": "e", "\u043a": "k", "\u043c": "m", "\u043d": "h",
    "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0442": "t", "\u0443": "y", "\u0445": "x", "\u0455": "s",
    "\u0456": "i", "\u0457": "i", "\u0458": "j", "\u0501": "d", "\u051b": "q", "\u051d": "w", "\u04bb": "h",
    "\u04cf": "l", "\u0261": "g", "\u057d": "u", "\u0410": "A", "\u0412": "B", "\u0415": "E", "\u041a": "K",
    "\u041c": "M", "\u041d": "H", "\u041e": "O", "\u0420": "P", "\u0421": "C", "\u0422": "T", "\u0423": "Y",
    "\u0425": "X", "\u0405": "S", "\u0406": "I", "\u0408": "J", "\u0500": "D", "\u051a": "Q", "\u051c": "W",
    "\u04ba": "H",
    # Greek
    "\u03b1": "a", "\u03b2": "b", "\u03b5": "e", "\u03b9": "i", "\u03ba": "k", "\u03bd": "v", "\u03bf": "o",
    "\u03c1": "p", "\u03c4": "t", "\u03c5": "u", "\u03c7": "x", "\u03b3": "y", "\u0391": "A", "\u0392": "B",
    "\u0395": "E", "\u0396": "Z", "\u0397": "H", "\u0399": "I", "\u039a": "K", "\u039c": "M", "\u039d": "N",
    "\u039f": "O", "\u03a1": "P", "\u03a4": "T", "\u03a5": "Y", "\u03a7": "X",
    # Latin letters outside ASCII that read as ASCII ones
    "\u0131": "i", "\u0237": "j", "\u2113": "l", "\u01c0": "l",
}  # fmt: skip
_CONFUSABLE_TABLE = str.maketrans(CONFUSABLES)
_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")

# Leetspeak, undone only inside a word that also has letters, so "2024" and "$5" stay as they are.
LEET: dict[str, str] = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a",
                        "$": "s", "!": "i", "|": "l", "+": "t", "€": "e"}  # fmt: skip
_LEET_TABLE = str.maketrans(LEET)
_LEET_WORD = re.compile(r"(?<![\w@$!|+€])(?=[\w@$!|+€]*[a-z])(?=[\w@$!|+€]*[013457890@$!|+€][\w@$!|+€]*[a-z]"
                        r"|[a-z][\w@$!|+€]*[013457890@$|+€])[\w@$!|+€]{3,24}(?![\w@$!|+€])")  # fmt: skip
# Four or more single letters separated by one space, dot, dash, underscore or asterisk: "i g n o r e".
_SPACED = re.compile(r"(?<![\w])(?:[a-z][ ._*\-]){3,}[a-z](?![\w])")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Folded:
    """A text's folded form and the disguises removed to get it."""

    text: str
    invisible: int = 0
    confusable_words: int = 0
    leet_words: int = 0
    spaced_runs: int = 0
    joined: tuple[str, ...] = ()

    @property
    def disguised(self) -> bool:
        return bool(self.invisible or self.confusable_words or self.leet_words or self.spaced_runs)


def script_of(char: str) -> str | None:
    """LATIN, CYRILLIC or GREEK for a letter of one of those scripts, else None."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    return next((script for script in _SCRIPTS if name.startswith(script)), None)


def mixed_script_words(text: str) -> list[str]:
    """Words mixing Latin with Cyrillic or Greek letters ("paypal" spelt with a Cyrillic a): a word in one script
    only (Russian, Greek) is not counted."""
    found = []
    for word in re.findall(r"\w{2,}", text):
        if word.isascii():
            continue
        scripts = {script for char in word if (script := script_of(char))}
        if len(scripts) > 1:
            found.append(word)
    return found


def _join_spaced(match: re.Match) -> str:
    return re.sub(r"[ ._*\-]", "", match.group())


def fold(text: str) -> Folded:
    """The text as the rule patterns read it (see the module's docstring)."""
    if text.isascii():
        normal, invisible, confusable = text, 0, 0
    else:
        invisible = len(INVISIBLE.findall(text))
        normal = INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
        confusable = len(mixed_script_words(normal))
        normal = normal.translate(_CONFUSABLE_TABLE)
    normal = normal.lower()
    leet = 0
    if any(char in normal for char in LEET):

        def unleet(match: re.Match) -> str:
            nonlocal leet
            leet += 1
            return match.group().translate(_LEET_TABLE)

        normal = _LEET_WORD.sub(unleet, normal)
    joined: tuple[str, ...] = ()
    if _SPACED.search(normal):
        joined = tuple(_join_spaced(match) for match in _SPACED.finditer(normal))
        normal = _SPACED.sub(_join_spaced, normal)
    return Folded(_SPACES.sub(" ", normal).strip(), invisible, confusable, leet, len(joined), joined)
