"""Similarity to a reference text: levenshtein, bleu, chrf, rouge-l.

ROUGE-L is computed here as the F1 of the longest common subsequence of word tokens, with
rapidfuzz's `LCSseq` (C++) doing the LCS. The packaged implementations were weighed and
left: Google's `rouge-score` (last release 0.1.2, July 2022; pulls nltk, absl-py, numpy),
`rouge-metric` (last release 2020) and `rouge` (2021) are unmaintained, and `torchmetrics`
needs torch. The tokenisation follows `rouge-score`'s default (lower case, runs of letters
and digits, no stemming), so the figures match it on ASCII text; unlike it, letters outside
ASCII are kept instead of dropped.
"""

from __future__ import annotations

import functools
import re

from rapidfuzz.distance import LCSseq, Levenshtein

from .base import VALUE_OR_EXPECTED, Case, ConfigField, Measure, ScorerInfo, reference

# Tokenisers that need no extra package and download nothing (spm/flores fetch a model).
BLEU_TOKENIZERS = ("13a", "intl", "zh", "char", "none")
LOWERCASE = ConfigField("lowercase", "boolean", "Lower-case both texts first.", default=False)
NOT_SIMILAR = "passes when the output is not similar (below the threshold): catches copying of the reference"


def build_levenshtein(config: dict) -> Measure:
    target = reference(config)
    ignore_case = config["ignore_case"]

    def measure(case: Case) -> tuple[float, str, float | None]:
        a, b = case.output, target(case)
        if ignore_case:
            a, b = a.casefold(), b.casefold()
        longest = max(len(a), len(b))
        distance = Levenshtein.distance(a, b)
        similarity = 1.0 - distance / longest if longest else 1.0
        return similarity, f"similarity {similarity:.2f} (edit distance {distance})", float(distance)

    return measure


def build_bleu(config: dict) -> Measure:
    from sacrebleu.metrics import BLEU  # imported when first needed: it costs ~0.25 s (numpy, lxml, portalocker)

    target = reference(config)
    # effective_order: sentence-level BLEU would be 0 for any text without a matching 4-gram.
    metric = BLEU(tokenize=config["tokenize"], lowercase=config["lowercase"], effective_order=True)

    def measure(case: Case) -> tuple[float, str, float | None]:
        bleu = min(metric.sentence_score(case.output, [target(case)]).score, 100.0)
        return bleu / 100, f"BLEU {bleu:.1f}", bleu

    return measure


def build_chrf(config: dict) -> Measure:
    from sacrebleu.metrics import CHRF

    target = reference(config)
    metric = CHRF(word_order=config["word_order"], lowercase=config["lowercase"])
    label = "chrF++" if config["word_order"] else "chrF"

    def measure(case: Case) -> tuple[float, str, float | None]:
        chrf = min(metric.sentence_score(case.output, [target(case)]).score, 100.0)
        return chrf / 100, f"{label} {chrf:.1f}", chrf

    return measure


_WORD = re.compile(r"[^\W_]+")


@functools.lru_cache(maxsize=4096)
def rouge_tokens(text: str) -> tuple[str, ...]:
    """Lower-cased runs of letters and digits; cached because references repeat across scorers and runs."""
    return tuple(_WORD.findall(text.lower()))


def rouge_l(output: str, target: str) -> float:
    """ROUGE-L F1 (beta 1, as rouge-score reports `fmeasure`)."""
    candidate, ref = rouge_tokens(output), rouge_tokens(target)
    if not candidate or not ref:
        return 0.0
    lcs = LCSseq.similarity(ref, candidate)
    if not lcs:
        return 0.0
    precision, recall = lcs / len(candidate), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def build_rouge_l(config: dict) -> Measure:
    target = reference(config)

    def measure(case: Case) -> tuple[float, str, float | None]:
        f1 = rouge_l(case.output, target(case))
        return f1, f"ROUGE-L F1 {f1:.2f}", f1

    return measure


SCORERS = [
    ScorerInfo(
        name="levenshtein",
        label="Levenshtein similarity",
        description="Character edit similarity to the reference: 1 - distance / length of the longer text. The "
        "value is the edit distance.",
        passing=f"the similarity reaches the threshold; the not-form {NOT_SIMILAR}",
        config_fields=(
            VALUE_OR_EXPECTED,
            ConfigField("ignore_case", "boolean", "Compare case-insensitively.", default=False),
        ),
        default_threshold=0.8,
        needs_expected=True,
        library="rapidfuzz",
        build=build_levenshtein,
    ),
    ScorerInfo(
        name="bleu",
        label="BLEU",
        description="Sentence-level BLEU (sacrebleu, effective order) against the reference; the score is BLEU / "
        "100, the value the usual 0-100 figure.",
        passing=f"BLEU / 100 reaches the threshold; the not-form {NOT_SIMILAR}",
        config_fields=(
            VALUE_OR_EXPECTED,
            ConfigField(
                "tokenize",
                "choice",
                "sacrebleu tokeniser: 13a (default, as WMT), intl (Unicode punctuation), zh (Chinese), char, none.",
                default="13a",
                choices=BLEU_TOKENIZERS,
            ),
            LOWERCASE,
        ),
        default_threshold=0.5,
        needs_expected=True,
        library="sacrebleu",
        build=build_bleu,
    ),
    ScorerInfo(
        name="chrf",
        label="chrF",
        description="Sentence-level chrF (character n-gram F-score, sacrebleu) against the reference; chrF++ with "
        "word_order 2. Works for languages without spaces. Score is chrF / 100, the value the 0-100 figure.",
        passing=f"chrF / 100 reaches the threshold; the not-form {NOT_SIMILAR}",
        config_fields=(
            VALUE_OR_EXPECTED,
            ConfigField(
                "word_order", "choice", "0: chrF; 2: chrF++ (adds word bigrams).", default=0, choices=(0, 1, 2)
            ),
            LOWERCASE,
        ),
        default_threshold=0.5,
        needs_expected=True,
        library="sacrebleu",
        build=build_chrf,
    ),
    ScorerInfo(
        name="rouge-l",
        label="ROUGE-L",
        description="ROUGE-L F1: longest common subsequence of words between output and reference (lower-cased, "
        "no stemming, as rouge-score's default). Languages written without spaces need chrf instead.",
        passing=f"ROUGE-L F1 reaches the threshold; the not-form {NOT_SIMILAR}",
        config_fields=(VALUE_OR_EXPECTED,),
        default_threshold=0.75,
        needs_expected=True,
        library="rapidfuzz (LCSseq)",
        build=build_rouge_l,
    ),
]
