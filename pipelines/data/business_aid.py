"""Synthetic COVID-19 business-compensation applications (Danish-style schemes).

No public labelled data exists for fraud in the compensation schemes, so this module generates
realistic, seeded applications with two targets: ``is_fraud`` (rare, learnable but noisy) and
``review_track`` (which review track a caseworker chose, from a noisy rule). Rows are produced in
fixed blocks seeded by ``SeedSequence([seed, block_index])`` so any chunking of the stream yields
exactly the same rows, and memory stays bounded by the block size.
"""

from collections.abc import Iterator

import numpy as np
import pandas as pd

SCHEMES: tuple[str, ...] = ("fixed_costs", "salary", "self_employed")
REVIEW_TRACKS: tuple[str, ...] = ("fast_track", "standard", "expert", "control")

SCHEME_WEIGHTS = np.array([0.35, 0.45, 0.20])
# Share of prior revenue typically requested per scheme at a 100% revenue drop.
SCHEME_BASE_REQUEST_RATIO = np.array([0.12, 0.22, 0.20])
INDUSTRY_WEIGHTS: dict[str, float] = {
    "47": 0.18,  # retail
    "56": 0.16,  # restaurants
    "96": 0.08,  # personal services
    "49": 0.07,  # transport
    "41": 0.07,  # construction
    "55": 0.06,  # hotels
    "93": 0.06,  # sports and leisure
    "86": 0.06,  # health
    "46": 0.06,  # wholesale
    "90": 0.05,  # arts
    "62": 0.05,  # IT
    "79": 0.04,  # travel agencies
    "68": 0.03,  # real estate
    "70": 0.03,  # consulting
}
RISKY_INDUSTRIES: tuple[str, ...] = ("41", "96")
REGION_WEIGHTS: dict[str, float] = {
    "hovedstaden": 0.32,
    "sjaelland": 0.14,
    "syddanmark": 0.21,
    "midtjylland": 0.23,
    "nordjylland": 0.10,
}
# Lockdown waves that drove application volume: (peak date, width in days, relative height).
APPLICATION_WAVES: tuple[tuple[str, float, float], ...] = (
    ("2020-04-20", 35.0, 2.5),
    ("2021-01-20", 50.0, 1.8),
)

# Columns copied as-is from the generated arrays, in output order.
NUMERIC_OUTPUT_COLUMNS: tuple[str, ...] = (
    "company_age_years",
    "employees",
    "prior_revenue_dkk",
    "claimed_revenue_drop_pct",
    "requested_amount_dkk",
    "requested_to_prior_revenue",
    "days_since_bank_account_change",
    "applicants_sharing_address",
    "applicants_sharing_phone",
    "auditor_statement_attached",
    "is_fraud",
)

BLOCK_ROWS = 50_000
FRAUD_RATE = 0.04
ELIGIBILITY_THRESHOLD_PCT = 35.0
OPPORTUNIST_RATE = 0.10
REVIEW_LABEL_NOISE = 0.09


def _day_span(start: str, end: str) -> tuple[np.datetime64, int]:
    """Validate the window and return its first day and its length in days (end inclusive)."""
    first, last = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if last <= first:
        raise ValueError(
            f"end must be at least one day after start, got start={start!r} end={end!r}"
        )
    return np.datetime64(first.date(), "D"), (last - first).days + 1


def _volume_cdf(first_day: np.datetime64, n_days: int) -> np.ndarray:
    """Cumulative share of applications at each day edge: a baseline plus lockdown waves."""
    days = first_day + np.arange(n_days)
    density = np.full(n_days, 0.4)
    for peak, width, height in APPLICATION_WAVES:
        offset = (days - np.datetime64(peak, "D")).astype(np.float64)
        density += height * np.exp(-0.5 * (offset / width) ** 2)
    cdf = np.concatenate([[0.0], np.cumsum(density)])
    return cdf / cdf[-1]


def _draw_dates(
    rng: np.random.Generator, rows: range, n_rows: int, first_day: np.datetime64, cdf: np.ndarray
) -> np.ndarray:
    """Place the block's rows in its own slice of time; sorted so the whole stream is monotone."""
    position = np.sort(rng.uniform(rows.start / n_rows, rows.stop / n_rows, size=len(rows)))
    day = np.interp(position, cdf, np.arange(cdf.size)).astype(np.int64)
    day = np.minimum(day, cdf.size - 2)
    return (first_day + day).astype("datetime64[ns]")


def _draw_company_profile(
    rng: np.random.Generator, opportunist: np.ndarray
) -> dict[str, np.ndarray]:
    """Scheme, sector, region, age, staff and prior revenue; opportunists are more often new."""
    size = opportunist.size
    scheme = rng.choice(len(SCHEMES), size=size, p=SCHEME_WEIGHTS)
    staff_median = np.array([4.0, 9.0, 0.5])[scheme]
    employees = np.rint(staff_median * rng.lognormal(0.0, 1.0, size=size)).astype(np.int64)
    employees = np.where(scheme == 1, np.maximum(employees, 1), employees)
    employees = np.where(scheme == 2, np.minimum(employees, 3), employees)
    age = rng.lognormal(np.log(7.0), 0.9, size=size)
    is_new = rng.random(size) < np.where(opportunist, 0.25, 0.07)
    age = np.where(is_new, rng.uniform(0.0, 1.0, size=size), np.minimum(age, 120.0))
    revenue = rng.lognormal(np.log(600_000.0) + 0.9 * np.log1p(employees), 0.6)
    return {
        "scheme": scheme,
        "industry": rng.choice(len(INDUSTRY_WEIGHTS), size=size, p=list(INDUSTRY_WEIGHTS.values())),
        "region": rng.choice(len(REGION_WEIGHTS), size=size, p=list(REGION_WEIGHTS.values())),
        "company_age_years": age,
        "employees": employees,
        "prior_revenue_dkk": revenue,
    }


def _draw_claim(
    rng: np.random.Generator, profile: dict[str, np.ndarray], opportunist: np.ndarray
) -> dict[str, np.ndarray]:
    """Claimed drop and requested amount; opportunists bunch at the threshold and inflate."""
    size = opportunist.size
    genuine_drop = ELIGIBILITY_THRESHOLD_PCT + 65.0 * rng.beta(1.3, 2.2, size=size)
    genuine_drop = np.where(rng.random(size) < 0.06, rng.uniform(5.0, 35.0, size), genuine_drop)
    just_above_threshold = rng.uniform(
        ELIGIBILITY_THRESHOLD_PCT, ELIGIBILITY_THRESHOLD_PCT + 5, size
    )
    implausible = rng.uniform(90.0, 100.0, size)
    gamed_drop = np.where(rng.random(size) < 0.7, just_above_threshold, implausible)
    gamed = opportunist & (rng.random(size) < 0.75)
    drop = np.clip(np.where(gamed, gamed_drop, genuine_drop), 0.0, 100.0)
    inflation = np.where(opportunist, rng.lognormal(0.7, 0.35, size), 1.0)
    justified = profile["prior_revenue_dkk"] * SCHEME_BASE_REQUEST_RATIO[profile["scheme"]]
    justified = justified * np.maximum(drop / 100.0, 0.05)
    requested = justified * rng.lognormal(0.0, 0.35, size) * inflation
    return {
        "claimed_revenue_drop_pct": drop,
        "requested_amount_dkk": requested,
        "requested_to_prior_revenue": requested / profile["prior_revenue_dkk"],
        "excess_request_log": np.log(requested / justified),
    }


def _draw_sharing_counts(rng: np.random.Generator, opportunist: np.ndarray) -> np.ndarray:
    """Applicants per address: shared offices and accountants are legit; rings are larger."""
    size = opportunist.size
    roll = rng.random(size)
    small_office, business_centre = rng.integers(2, 4, size), rng.integers(4, 21, size)
    legit = np.select([roll < 0.84, roll < 0.97], [1, small_office], default=business_centre)
    ring = opportunist & (rng.random(size) < 0.45)
    return np.where(ring, rng.integers(3, 16, size), legit).astype(np.int64)


def _draw_fraud_signals(
    rng: np.random.Generator, claim: dict[str, np.ndarray], age: np.ndarray, opportunist: np.ndarray
) -> dict[str, np.ndarray]:
    """Bank-account change, shared address/phone and auditor statement; legit firms show some."""
    size = opportunist.size
    changed = rng.random(size) < np.where(opportunist, 0.75, 0.22)
    days_since = np.floor(rng.exponential(500.0, size))
    recent = opportunist & (rng.random(size) < 0.8)
    days_since = np.where(recent, rng.integers(0, 31, size), days_since)
    address = _draw_sharing_counts(rng, opportunist)
    same_ring_phone = opportunist & (address > 2) & (rng.random(size) < 0.6)
    phone = np.where(rng.random(size) < 0.93, 1, rng.integers(2, 4, size))
    phone = np.where(same_ring_phone, np.maximum(address // 2, 2), phone).astype(np.int64)
    size_effect = 0.9 * np.log10(claim["requested_amount_dkk"] / 200_000.0)
    auditor_logit = -0.9 + size_effect + 0.4 * np.log1p(age) - np.where(opportunist, 1.8, 0.0)
    auditor = rng.random(size) < 1.0 / (1.0 + np.exp(-auditor_logit))
    return {
        "days_since_bank_account_change": np.where(changed, days_since.astype(np.float64), np.nan),
        "applicants_sharing_address": address,
        "applicants_sharing_phone": phone,
        "auditor_statement_attached": auditor,
    }


def _intercept_for_rate(score: np.ndarray, rate: float) -> float:
    """Bisect the logit intercept so the expected positive share of the block equals rate."""
    low, high = -25.0, 25.0
    for _ in range(50):
        middle = 0.5 * (low + high)
        if np.mean(1.0 / (1.0 + np.exp(-(score + middle)))) < rate:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def _draw_fraud_label(rng: np.random.Generator, columns: dict[str, np.ndarray]) -> np.ndarray:
    """Fraud from a latent logit over observable signals plus Gaussian noise, calibrated to ~4%."""
    risky_codes = [list(INDUSTRY_WEIGHTS).index(code) for code in RISKY_INDUSTRIES]
    drop = columns["claimed_revenue_drop_pct"]
    big_claim_no_auditor = (columns["requested_amount_dkk"] > 250_000.0) & ~columns[
        "auditor_statement_attached"
    ]
    score = (
        1.6 * (columns["days_since_bank_account_change"] <= 30.0)
        + 0.8 * np.log(columns["applicants_sharing_address"])
        + 0.6 * np.log(columns["applicants_sharing_phone"])
        + 0.9 * big_claim_no_auditor
        + 0.7 * (columns["company_age_years"] < 1.0)
        + 0.9 * np.clip(columns["excess_request_log"], -1.5, 2.5)
        + 0.8 * ((drop >= ELIGIBILITY_THRESHOLD_PCT) & (drop < ELIGIBILITY_THRESHOLD_PCT + 5.0))
        + 0.7 * (drop > 90.0)
        + 0.5 * np.isin(columns["industry"], risky_codes)
        + rng.normal(0.0, 1.3, size=drop.size)
    )
    probability = 1.0 / (1.0 + np.exp(-(score + _intercept_for_rate(score, FRAUD_RATE))))
    return (rng.random(drop.size) < probability).astype(np.int64)


def _assign_review_track(rng: np.random.Generator, columns: dict[str, np.ndarray]) -> np.ndarray:
    """Caseworkers' routing rule (control > expert > fast track > standard) with label noise."""
    amount = columns["requested_amount_dkk"]
    auditor = columns["auditor_statement_attached"]
    suspicious = (
        (columns["days_since_bank_account_change"] <= 30.0)
        | (columns["applicants_sharing_address"] >= 4)
        | (columns["applicants_sharing_phone"] >= 3)
        | ((columns["is_fraud"] == 1) & (rng.random(amount.size) < 0.5))
    )
    complex_claim = (
        ((columns["scheme"] == 0) & (amount > 1_000_000.0))
        | (amount > 2_500_000.0)
        | (~auditor & (amount > 500_000.0))
    )
    small_backed = auditor & (amount < 150_000.0) & (columns["company_age_years"] >= 1.0)
    track = np.select([suspicious, complex_claim, small_backed], [3, 2, 0], default=1)
    noisy = rng.random(amount.size) < REVIEW_LABEL_NOISE
    return np.where(noisy, rng.integers(0, len(REVIEW_TRACKS), amount.size), track)


def _generate_block(
    block_index: int, n_rows: int, seed: int, first_day: np.datetime64, cdf: np.ndarray
) -> pd.DataFrame:
    """One fixed block of rows, seeded only by (seed, block_index) so chunking never matters."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, block_index]))
    rows = range(block_index * BLOCK_ROWS, min((block_index + 1) * BLOCK_ROWS, n_rows))
    dates = _draw_dates(rng, rows, n_rows, first_day, cdf)
    opportunist = rng.random(len(rows)) < OPPORTUNIST_RATE
    profile = _draw_company_profile(rng, opportunist)
    claim = _draw_claim(rng, profile, opportunist)
    signals = _draw_fraud_signals(rng, claim, profile["company_age_years"], opportunist)
    columns = profile | claim | signals
    columns["is_fraud"] = _draw_fraud_label(rng, columns)
    track = _assign_review_track(rng, columns)
    row_number = np.arange(rows.start, rows.stop)
    frame = {
        "application_id": np.strings.add("BA-", np.strings.zfill(row_number.astype(str), 10)),
        "application_date": dates,
        "scheme": np.asarray(SCHEMES)[profile["scheme"]],
        "industry_code": np.asarray(list(INDUSTRY_WEIGHTS))[profile["industry"]],
        "region": np.asarray(list(REGION_WEIGHTS))[profile["region"]],
    }
    frame |= {name: columns[name] for name in NUMERIC_OUTPUT_COLUMNS}
    frame["company_size_band"] = size_band(columns["employees"])
    frame["review_track"] = np.asarray(REVIEW_TRACKS)[track]
    return pd.DataFrame(frame, index=pd.RangeIndex(rows.start, rows.stop))


def size_band(employees: np.ndarray) -> np.ndarray:
    """The EU's company size classes by head count (sole traders apart): a slice for fairness
    checks, not a feature."""
    conditions = [employees == 0, employees < 10, employees < 50, employees < 250]
    return np.select(conditions, ["sole", "micro", "small", "medium"], default="large")


def iter_application_chunks(
    n_rows: int,
    seed: int,
    *,
    chunk_rows: int = 250_000,
    start: str = "2020-04-01",
    end: str = "2022-06-30",
) -> Iterator[pd.DataFrame]:
    """Stream applications in time order, chunk_rows at a time, with bounded memory.

    Chunks carry the global row number as index; concatenating them gives the same rows as
    generate_applications whatever chunk_rows is.
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    first_day, n_days = _day_span(start, end)
    return _stream_chunks(n_rows, seed, chunk_rows, first_day, _volume_cdf(first_day, n_days))


def _stream_chunks(
    n_rows: int, seed: int, chunk_rows: int, first_day: np.datetime64, cdf: np.ndarray
) -> Iterator[pd.DataFrame]:
    """Re-slice fixed generation blocks into chunks of chunk_rows (the last may be shorter)."""
    pending: list[pd.DataFrame] = []
    pending_rows = 0
    for block_index in range(-(-n_rows // BLOCK_ROWS)):
        block = _generate_block(block_index, n_rows, seed, first_day, cdf)
        pending.append(block)
        pending_rows += len(block)
        is_last = block_index == (n_rows - 1) // BLOCK_ROWS
        if pending_rows < chunk_rows and not is_last:
            continue
        buffer = pd.concat(pending) if len(pending) > 1 else pending[0]
        ready = len(buffer) if is_last else len(buffer) - len(buffer) % chunk_rows
        for offset in range(0, ready, chunk_rows):
            yield buffer.iloc[offset : min(offset + chunk_rows, ready)]
        pending = [buffer.iloc[ready:]] if ready < len(buffer) else []
        pending_rows = len(buffer) - ready


def generate_applications(
    n_rows: int, seed: int, *, start: str = "2020-04-01", end: str = "2022-06-30"
) -> pd.DataFrame:
    """All n_rows applications in one frame (fresh RangeIndex); same inputs give identical data."""
    chunks = iter_application_chunks(n_rows, seed, chunk_rows=BLOCK_ROWS, start=start, end=end)
    return pd.concat(list(chunks), ignore_index=True)
