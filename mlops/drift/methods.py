"""Drift methods: each compares a reference sample with a current one and returns a `MethodResult`.

Every method follows Evidently's definition and default threshold, so the decisions match the ones
users already trust. Two kinds:

- tests (`ks`, `chisquare`, `chisquare_gof`, `z`, `anderson`, `cramer_von_mises`): the statistic and a
  p-value; the column drifts when ``p_value < threshold`` (default 0.05);
- distances (`wasserstein`, `jensenshannon`, `psi`, `kl_div`, `hellinger`, `energy`): the column drifts
  when ``statistic >= threshold`` (default 0.1).

Inputs are 1-D numpy arrays without missing values (callers drop them: see `select.py`). Numerical
methods take float arrays; categorical methods take arrays of labels (any hashable dtype) or, faster,
category codes with their counts (`categorical_counts`).

The chi-square: ``chisquare`` is the two-sample test of homogeneity on the 2 x k table of reference
and current counts (``scipy.stats.chi2_contingency`` without continuity correction). Its expected
current counts are ``n_current * (reference_count + current_count) / (n_reference + n_current)``: the
reference proportions pooled with the current ones. The goodness-of-fit variant Evidently computes
(``chisquare_gof``: expected counts ``n_current * reference_proportion``) treats the reference
proportions as the true ones, which ignores the reference's own sampling noise: when the reference is
a sample of a size similar to the current one (the case where the selection picks chi-square: at most
1,000 reference rows) it flags about a third of undrifted columns instead of 5 %. Categories unseen
in the reference are kept as their own cells in the homogeneity test (their expected current count is
finite, so a handful of new values does not make the statistic infinite; many of them do drift). In
``chisquare_gof`` they are pooled into one "new" cell whose reference count is 0.5 (a half-count
pseudo-observation), again so the expected count is finite; categories present in neither are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._lazy import stats

# Evidently's bin count for the binned distances on numerical columns (get_binned_data's n_bins).
N_BINS = 30
# Evidently replaces empty bins' shares by this before PSI, KL and Jensen-Shannon (no log of 0).
EMPTY_SHARE = 0.0001
# Evidently's floor for the reference standard deviation in the normed Wasserstein distance.
MIN_STD = 0.001


@dataclass(frozen=True)
class MethodResult:
    """One column's comparison: the statistic, the p-value for tests (None for distances) and the verdict."""

    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class Method:
    """A drift method: its name, kind ('test' or 'distance'), default threshold and the column kinds it takes."""

    name: str
    kind: str
    default_threshold: float
    kinds: frozenset[str]
    compute: Callable[..., tuple[float, float | None]]
    description: str

    def from_counts(
        self, reference_counts: np.ndarray, current_counts: np.ndarray, threshold: float | None = None
    ) -> MethodResult:
        """Compare two samples of categories given as counts per category (the same categories, same order).

        The same result as calling the method on the samples themselves, with the categories in that
        order (for ``z``, the first category present is the one whose share is compared); categories
        absent from both are dropped. Only for the methods that take categorical columns.
        """
        if "categorical" not in self.kinds:
            raise ValueError(f"{self.name}: takes numerical samples, not category counts")
        if threshold is None:
            threshold = self.default_threshold
        present = (reference_counts + current_counts) > 0
        reference_counts, current_counts = reference_counts[present], current_counts[present]
        if reference_counts.sum() == 0 or current_counts.sum() == 0:
            raise ValueError(f"{self.name}: reference and current need at least one non-missing value each")
        if self.name in BINNED:
            statistic, p_value = self.compute(reference_counts, current_counts, False, counts=True)
        else:
            statistic, p_value = COUNT_TESTS[self.name](reference_counts, current_counts)
        drifted = (p_value < threshold) if self.kind == "test" else (statistic >= threshold)
        return MethodResult(
            self.name, float(statistic), None if p_value is None else float(p_value), threshold, bool(drifted)
        )

    def __call__(
        self, reference: np.ndarray, current: np.ndarray, threshold: float | None = None, numerical: bool | None = None
    ) -> MethodResult:
        """Compare the two samples; `threshold` overrides the method's default.

        `numerical` says whether the values are numbers to bin (default: when their dtype is numeric); pass
        False for category codes so the binned distances count categories instead of binning the codes.
        """
        if threshold is None:
            threshold = self.default_threshold
        if len(reference) == 0 or len(current) == 0:
            raise ValueError(f"{self.name}: reference and current need at least one non-missing value each")
        if numerical is None:
            numerical = reference.dtype.kind in "fiu"
        if self.name in BINNED:
            statistic, p_value = self.compute(reference, current, numerical)
        else:
            statistic, p_value = self.compute(reference, current)
        drifted = (p_value < threshold) if self.kind == "test" else (statistic >= threshold)
        return MethodResult(
            self.name, float(statistic), None if p_value is None else float(p_value), threshold, bool(drifted)
        )


def categorical_counts(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts per category in the reference and in the current sample, over the union of their categories.

    Returns (categories, reference_counts, current_counts); the categories are sorted.
    """
    both = np.concatenate([reference, current])
    categories, codes = np.unique(both, return_inverse=True)
    reference_counts = np.bincount(codes[: len(reference)], minlength=len(categories))
    current_counts = np.bincount(codes[len(reference) :], minlength=len(categories))
    return categories, reference_counts, current_counts


def binned_shares(
    reference: np.ndarray,
    current: np.ndarray,
    numerical: bool,
    n_bins: int = N_BINS,
    fill_empty: bool = True,
    counts: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Evidently's get_binned_data: shares per bin (`n_bins` equal bins over both samples) or per category.

    With `counts`, `reference` and `current` are already the counts per category (not numerical).
    """
    if counts:
        reference_shares = reference / reference.sum()
        current_shares = current / current.sum()
    elif numerical:
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins=n_bins)
        reference_shares = np.histogram(reference, edges)[0] / len(reference)
        current_shares = np.histogram(current, edges)[0] / len(current)
    else:
        _categories, reference_counts, current_counts = categorical_counts(reference, current)
        reference_shares = reference_counts / len(reference)
        current_shares = current_counts / len(current)
    if fill_empty:
        reference_shares = np.where(reference_shares == 0, EMPTY_SHARE, reference_shares)
        current_shares = np.where(current_shares == 0, EMPTY_SHARE, current_shares)
    return reference_shares, current_shares


# --- tests -------------------------------------------------------------------------------------------------


def ks(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov (scipy.stats.ks_2samp, two-sided, its 'auto' method)."""
    result = stats.ks_2samp(reference, current)
    return result.statistic, result.pvalue


def chisquare_from_counts(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity on the 2 x k table (equals scipy.stats.chi2_contingency(correction=False))."""
    keep = (reference_counts + current_counts) > 0
    observed = np.vstack([reference_counts[keep], current_counts[keep]]).astype(float)
    if observed.shape[1] < 2:
        return 0.0, 1.0
    totals = observed.sum(axis=1, keepdims=True)
    expected = totals * observed.sum(axis=0, keepdims=True) / observed.sum()
    statistic = float(((observed - expected) ** 2 / expected).sum())
    dof = observed.shape[1] - 1
    return statistic, float(stats.chi2.sf(statistic, dof))


def chisquare(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity between the reference and current category counts (see the module docstring)."""
    _categories, reference_counts, current_counts = categorical_counts(reference, current)
    return chisquare_from_counts(reference_counts, current_counts)


def chisquare_gof_from_counts(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Goodness of fit of the current counts to the reference proportions; unseen categories pooled (0.5 count)."""
    seen = reference_counts > 0
    observed = current_counts[seen].astype(float)
    reference_seen = reference_counts[seen].astype(float)
    new = current_counts[~seen].sum()
    if new:
        observed = np.append(observed, new)
        reference_seen = np.append(reference_seen, 0.5)
    if len(observed) < 2:
        return 0.0, 1.0
    expected = observed.sum() * reference_seen / reference_seen.sum()
    result = stats.chisquare(observed, expected)
    return float(result.statistic), float(result.pvalue)


def chisquare_gof(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Evidently's chi-square: expected current counts from the reference proportions (see the module docstring)."""
    _categories, reference_counts, current_counts = categorical_counts(reference, current)
    return chisquare_gof_from_counts(reference_counts, current_counts)


def z_from_counts(reference_hits: int, reference_n: int, current_hits: int, current_n: int) -> tuple[float, float]:
    """Two-proportion Z-test (pooled variance), two-sided; p = 1 when both samples hold a single same value."""
    p1, p2 = reference_hits / reference_n, current_hits / current_n
    pooled = (reference_hits + current_hits) / (reference_n + current_n)
    variance = pooled * (1 - pooled) * (1 / reference_n + 1 / current_n)
    if variance == 0:
        return 0.0, 1.0
    z = (p1 - p2) / np.sqrt(variance)
    return float(z), float(2 * stats.norm.sf(abs(z)))


def z(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Z-test for a binary column: the share of its first value (sorted) in the reference vs the current sample."""
    _categories, reference_counts, current_counts = categorical_counts(reference, current)
    return z_binary_counts(reference_counts, current_counts)


def z_binary_counts(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Z-test from the counts of a binary column's values (its first value's share is compared)."""
    if len(reference_counts) > 2:
        raise ValueError(f"z: a binary column has at most 2 values, this one has {len(reference_counts)}")
    return z_from_counts(
        int(reference_counts[0]), int(reference_counts.sum()), int(current_counts[0]), int(current_counts.sum())
    )


def anderson(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """k-sample Anderson-Darling (scipy.stats.anderson_ksamp); scipy caps its p-value to [0.001, 0.25]."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy warns when the p-value is capped
        result = stats.anderson_ksamp([reference, current])
    return float(result.statistic), float(result.pvalue)


def cramer_von_mises(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Cramér-von Mises (scipy.stats.cramervonmises_2samp, its 'auto' method)."""
    result = stats.cramervonmises_2samp(reference, current)
    return float(result.statistic), float(result.pvalue)


# --- distances ---------------------------------------------------------------------------------------------


def wasserstein_1d(reference: np.ndarray, current: np.ndarray) -> float:
    """First Wasserstein distance between two samples (equals scipy.stats.wasserstein_distance), sorting each once."""
    u = np.sort(reference)
    v = np.sort(current)
    if len(u) == len(v):
        # Equal sizes: the quantile functions are step functions on the same grid.
        difference = np.subtract(u, v, out=u)
        return float(np.mean(np.abs(difference, out=difference)))
    both = np.concatenate([u, v])
    order = np.argsort(both, kind="stable")  # two sorted runs: timsort merges them in linear time
    merged = both[order]
    from_u = order < len(u)
    deltas = np.diff(merged)
    u_cdf = np.cumsum(from_u)[:-1] / len(u)
    v_cdf = np.cumsum(~from_u)[:-1] / len(v)
    return float(np.dot(np.abs(u_cdf - v_cdf), deltas))


def wasserstein(reference: np.ndarray, current: np.ndarray) -> tuple[float, None]:
    """Normed Wasserstein distance (Evidently's): the Wasserstein distance over the reference's standard deviation."""
    std = max(float(np.std(reference)), MIN_STD)
    return wasserstein_1d(reference, current) / std, None


def _rel_entr(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(p / q), 0.0)


def jensenshannon_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance of two share vectors, natural log (equals scipy.spatial.distance.jensenshannon)."""
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2
    return float(np.sqrt(max((_rel_entr(p, m).sum() + _rel_entr(q, m).sum()) / 2, 0.0)))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Kullback-Leibler divergence of q from p, natural log (equals scipy.stats.entropy(p, q))."""
    p = p / p.sum()
    q = q / q.sum()
    return float(_rel_entr(p, q).sum())


def jensenshannon(
    reference: np.ndarray, current: np.ndarray, numerical: bool = True, counts: bool = False
) -> tuple[float, None]:
    """Jensen-Shannon distance (natural log) between the binned shares (scipy.spatial.distance.jensenshannon)."""
    reference_shares, current_shares = binned_shares(reference, current, numerical, counts=counts)
    return jensenshannon_distance(reference_shares, current_shares), None


def psi(reference: np.ndarray, current: np.ndarray, numerical: bool = True, counts: bool = False) -> tuple[float, None]:
    """Population stability index: sum((ref - cur) * ln(ref / cur)) over the binned shares."""
    reference_shares, current_shares = binned_shares(reference, current, numerical, counts=counts)
    return float(np.sum((reference_shares - current_shares) * np.log(reference_shares / current_shares))), None


def kl_div(
    reference: np.ndarray, current: np.ndarray, numerical: bool = True, counts: bool = False
) -> tuple[float, None]:
    """Kullback-Leibler divergence of the current binned shares from the reference ones (scipy.stats.entropy)."""
    reference_shares, current_shares = binned_shares(reference, current, numerical, counts=counts)
    return kl_divergence(reference_shares, current_shares), None


def hellinger(
    reference: np.ndarray, current: np.ndarray, numerical: bool = True, counts: bool = False
) -> tuple[float, None]:
    """Hellinger distance between the binned shares (no empty-bin filling), in [0, 1]."""
    reference_shares, current_shares = binned_shares(reference, current, numerical, fill_empty=False, counts=counts)
    return float(np.sqrt(np.sum((np.sqrt(reference_shares) - np.sqrt(current_shares)) ** 2) / 2)), None


def energy(reference: np.ndarray, current: np.ndarray) -> tuple[float, None]:
    """Energy distance (scipy.stats.energy_distance)."""
    return float(stats.energy_distance(reference, current)), None


# Methods that bin numbers or count categories, told which by `numerical` (or given counts: `counts`).
BINNED = frozenset({"jensenshannon", "psi", "kl_div", "hellinger"})
# The tests on categories, from their counts per category.
COUNT_TESTS: dict[str, Callable[[np.ndarray, np.ndarray], tuple[float, float]]] = {
    "chisquare": chisquare_from_counts,
    "chisquare_gof": chisquare_gof_from_counts,
    "z": z_binary_counts,
}
NUMERICAL = frozenset({"numerical"})
CATEGORICAL = frozenset({"categorical", "boolean"})
ALL = NUMERICAL | CATEGORICAL

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("ks", "test", 0.05, NUMERICAL, ks, "Kolmogorov-Smirnov two-sample test"),
        Method("chisquare", "test", 0.05, CATEGORICAL, chisquare, "Chi-square test of homogeneity"),
        Method("chisquare_gof", "test", 0.05, CATEGORICAL, chisquare_gof, "Chi-square goodness of fit (Evidently's)"),
        Method("z", "test", 0.05, CATEGORICAL, z, "Two-proportion Z-test (binary columns)"),
        Method("anderson", "test", 0.05, NUMERICAL, anderson, "Anderson-Darling k-sample test"),
        Method("cramer_von_mises", "test", 0.05, NUMERICAL, cramer_von_mises, "Cramér-von Mises two-sample test"),
        Method("wasserstein", "distance", 0.1, NUMERICAL, wasserstein, "Wasserstein distance / reference std"),
        Method("jensenshannon", "distance", 0.1, ALL, jensenshannon, "Jensen-Shannon distance"),
        Method("psi", "distance", 0.1, ALL, psi, "Population stability index"),
        Method("kl_div", "distance", 0.1, ALL, kl_div, "Kullback-Leibler divergence"),
        Method("hellinger", "distance", 0.1, ALL, hellinger, "Hellinger distance"),
        Method("energy", "distance", 0.1, NUMERICAL, energy, "Energy distance"),
    ]
}
# Evidently's names for the same methods, accepted wherever a method is named.
ALIASES = {
    "chi_square": "chisquare",
    "chi2": "chisquare",
    "z_test": "z",
    "ztest": "z",
    "wasserstein_distance": "wasserstein",
    "wasserstein_norm": "wasserstein",
    "js": "jensenshannon",
    "jensen_shannon": "jensenshannon",
    "kl": "kl_div",
    "anderson_darling": "anderson",
    "cramer": "cramer_von_mises",
    "cvm": "cramer_von_mises",
    "energy_distance": "energy",
    "kolmogorov_smirnov": "ks",
}


def get_method(name: str) -> Method:
    """The method called `name` (or one of Evidently's names for it); ValueError naming the choices otherwise."""
    key = ALIASES.get(name.lower(), name.lower())
    try:
        return METHODS[key]
    except KeyError:
        raise ValueError(f"unknown drift method {name!r}; choose from {', '.join(METHODS)}") from None
