"""The course's headline claims, as each module's benchmark declares them for the overview.

A module's benchmark (``benchmarks/<module>.py``) ends with its :class:`Benchmark`: the figure
function the overview runs, the module's headline promise, and its :class:`Claim` declarations.
A claim says what is measured, the course's promise, and the rule that turns the module's
figures into rows of the overview's table (:class:`Finding`: the verdict and its reason). The
overview (``benchmarks/overview.py``) only collects the figures, judges every declared claim,
tabulates, plots and writes the JSON: a new claim is one more :class:`Claim` in one file.

It imports nothing outside the standard library: declaring or reading a claim loads no numpy
and pins nothing, whichever process imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HOLDS, FAILS, INFO, MISSING = "holds", "does not hold", "info", "not measured"


@dataclass
class Finding:
    """One row of the table: a headline claim, what was measured and whether the promise holds.

    ``value`` is the headline number (a ratio, or accuracy points) and ``low`` / ``high`` its
    spread as the module's benchmark reports it (IQR or min-max of the timed runs, carried into
    the ratio); ``reason`` says why a claim holds only in part, does not hold, or was not measured.
    Its fields are the keys of each entry of ``claims`` in the overview's JSON.
    """

    module: int
    claim: str
    measured: str
    promise: str
    verdict: str
    reason: str = ""
    value: float | None = None
    low: float | None = None
    high: float | None = None
    unit: str = "x"
    spread: str = ""


# the rule of a claim: (the claim, the module's figures, quick mode) -> its rows of the table
Rule = Callable[["Claim", dict[str, Any], bool], list[Finding]]


@dataclass(frozen=True)
class Claim:
    """A headline claim, declared beside the benchmark that measures it.

    ``name`` names the claim, ``measures`` says in words what the benchmark measures for it,
    ``promise`` is the course's promise, and ``rule`` gives the verdict and its reason: one
    :class:`Finding` per thing judged (a claim made of each zoo model gives a row per model).
    """

    module: int
    name: str
    measures: str
    promise: str
    rule: Rule

    def judge(self, figures: dict[str, Any], quick: bool = False) -> list[Finding]:
        """The rows of this claim from the module's figures."""
        return self.rule(self, figures, quick)

    def found(
        self,
        claim: str,
        measured: str,
        verdict: str,
        reason: str = "",
        value: float | None = None,
        low: float | None = None,
        high: float | None = None,
        unit: str = "x",
        spread: str = "",
        promise: str | None = None,
    ) -> Finding:
        """A row of this claim: ``claim`` is its label in the table; the promise is the claim's
        unless ``promise`` names the part of it this row judges."""
        return Finding(
            self.module,
            claim,
            measured,
            self.promise if promise is None else promise,
            verdict,
            reason,
            value,
            low,
            high,
            unit,
            spread,
        )

    def missing(self, claim: str, reason: str, promise: str | None = None) -> Finding:
        """A row of this claim that could not be measured, with why."""
        return self.found(claim, "-", MISSING, reason, promise=promise)


@dataclass(frozen=True)
class Benchmark:
    """What the overview needs of one module's benchmark: its number and name, the function
    that returns its figures (``run(quick)``), its declared claims and its headline promise
    (the promise of the row that says the module could not be measured)."""

    number: int
    name: str
    run: Callable[[bool], dict[str, Any]]
    claims: tuple[Claim, ...]
    promise: str

    def judge(self, result: dict[str, Any], quick: bool) -> list[Finding]:
        """Every row of the module's claims from its collected result (figures, or the error
        that stopped it); one "not measured" row when there are no figures, or when they have a
        shape the claims cannot read."""
        label = f"module {self.number} {self.name}"
        if result.get("figures") is None:
            return [Finding(self.number, label, "-", self.promise, MISSING, result["error"])]
        try:
            return [row for claim in self.claims for row in claim.judge(result["figures"], quick)]
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as error:
            reason = f"its benchmark's figures have an unexpected shape ({type(error).__name__}: {error})"
            return [Finding(self.number, label, "-", self.promise, MISSING, reason)]


# --------------------------------------------------------------------------- the rules' figures as text


def ratio_range(num: tuple[float, float], den: tuple[float, float]) -> tuple[float, float]:
    """(lowest, highest) of num / den when each lies in its (low, high) band."""
    return num[0] / den[1], num[1] / den[0]


def as_ratio(value: float) -> str:
    """A ratio as text: 3 significant figures below 100 (2 below 0.1), grouped digits above."""
    if value >= 100:
        return f"{value:,.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    if value < 0.1:  # two significant figures: a naive kernel's 0.0077x, not 0.01x
        return f"{value:.2g}x"
    return f"{value:.2f}x"


def as_points(change: float) -> str:
    """An accuracy change in percentage points, signed (a loss is negative; no "-0.00")."""
    return f"{change + 0.0:+.2f} pp" if round(change, 2) != 0 else "+0.00 pp"


def band(low: float | None, high: float | None, fmt: Callable[[float], str] = as_ratio) -> str:
    """A spread as text, "" when there is none."""
    return "" if low is None or high is None else f"{fmt(low)}-{fmt(high)}"


def int_keys(mapping: dict) -> dict:
    """Keys as ints (a benchmark run in a subprocess returns JSON, whose keys are strings)."""
    return {int(k): v for k, v in mapping.items()}
