"""train_metadata.csv fields with the real file's traits, for the synthetic default.

What the real BirdCLEF 2021 metadata looks like and the synthetic rows copy: a few prolific
recordists per species (`author`, names here are invented), ratings 0.5-5.0 with 0.0 for unrated,
coordinates worldwide (the subset's species are recorded far beyond Brittany), free-text `time`
('08:15', '8:00', '?', '', '06:30:00 AM'), dates with an unknown day ('2014-06-00'), and `type`
lists such as ['call', 'song'] or ['flight call'].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from birdlab.data.species import BRITTANY_BOX, LatLonBox

AUTHORS = (
    "Maëlle Le Goff", "Yann Kerbrat", "Anne Cadiou", "Jonas Weber", "Piotr Nowak", "Lucía Ortega", "Henrik Dahl",
    "Sophie Martin", "Tomás Rivera", "Erwan Le Bihan", "Greta Lindqvist", "Marco Bellini", "Inês Ferreira",
    "Olivier Guéguen", "Katarzyna Wójcik", "Pieter de Vries", "Ray Holloway", "Aiko Tanaka",
)
"""Invented recordists (some with non-ASCII names, as in the real file)."""

EUROPE_BOX = LatLonBox(lat_min=36.0, lat_max=66.0, lon_min=-10.0, lon_max=35.0)
"""Where most non-Brittany recordings of the subset's species come from."""
WORLD_BOXES = (
    LatLonBox(lat_min=25.0, lat_max=60.0, lon_min=-125.0, lon_max=-65.0),  # North America
    LatLonBox(lat_min=-40.0, lat_max=5.0, lon_min=-75.0, lon_max=-40.0),  # South America
    LatLonBox(lat_min=-35.0, lat_max=15.0, lon_min=10.0, lon_max=40.0),  # Africa
    LatLonBox(lat_min=20.0, lat_max=55.0, lon_min=70.0, lon_max=140.0),  # Asia
    LatLonBox(lat_min=-38.0, lat_max=-20.0, lon_min=115.0, lon_max=150.0),  # Australia
)
"""Outside Europe: the subset holds cosmopolitan species (mallard, osprey, ...)."""

RATINGS = tuple(r / 2 for r in range(1, 11))
"""Rated recordings: 0.5 .. 5.0 in steps of 0.5 (0.0 means unrated)."""
RATING_WEIGHTS = (1, 1, 2, 3, 5, 7, 10, 12, 11, 9)
"""Real ratings lean high: most recordings are rated 3.0-5.0."""

CALL_TYPES = (("call",), ("song",), ("call", "song"), ("flight call",), ("alarm call",), ("male", "song"),
              ("adult", "sex uncertain", "song"))
CALL_TYPE_WEIGHTS = (30, 30, 15, 8, 6, 7, 4)


def species_authors(*, rng: np.random.Generator) -> tuple[tuple[str, ...], np.ndarray]:
    """(2-5 recordists of one species, their probabilities): the first records about half the files."""
    k = int(rng.integers(2, 6))
    names = tuple(str(a) for a in rng.choice(AUTHORS, size=k, replace=False))
    weights = 1.0 / np.arange(1, k + 1) ** 1.2
    return names, weights / weights.sum()


def _in_box(box: LatLonBox, *, rng: np.random.Generator) -> tuple[float, float]:
    return float(rng.uniform(box.lat_min, box.lat_max)), float(rng.uniform(box.lon_min, box.lon_max))


def coordinates(*, rng: np.random.Generator, brittany_share: float, outside_europe_share: float) -> tuple[str, str]:
    """(latitude, longitude) as the real file writes them (4 decimals): in Brittany's box with probability
    brittany_share, outside Europe with probability outside_europe_share, elsewhere in Europe otherwise."""
    draw = rng.random()
    if draw < brittany_share:
        box = LatLonBox(lat_min=BRITTANY_BOX.lat_min + 0.1, lat_max=BRITTANY_BOX.lat_max - 0.1,
                        lon_min=BRITTANY_BOX.lon_min + 0.5, lon_max=BRITTANY_BOX.lon_max - 0.2)
    elif draw < brittany_share + outside_europe_share:
        box = WORLD_BOXES[int(rng.integers(len(WORLD_BOXES)))]
    else:
        box = EUROPE_BOX
    lat, lon = _in_box(box, rng=rng)
    return f"{lat:.4f}", f"{lon:.4f}"


def rating(*, rng: np.random.Generator, unrated_share: float) -> str:
    """'0.0' (unrated) with probability unrated_share, else a rating 0.5-5.0 leaning high."""
    if rng.random() < unrated_share:
        return "0.0"
    weights = np.asarray(RATING_WEIGHTS, float)
    return f"{RATINGS[int(rng.choice(len(RATINGS), p=weights / weights.sum()))]:.1f}"


def time_text(*, rng: np.random.Generator) -> str:
    """Free text as recordists typed it: mostly 'HH:MM', sometimes '8:00', '?', '' or '06:30:00 AM'."""
    hour, minute = int(rng.integers(4, 22)), int(rng.choice((0, 0, 15, 30, 45, int(rng.integers(60)))))
    form = float(rng.random())
    if form < 0.62:
        return f"{hour:02d}:{minute:02d}"
    if form < 0.74:
        return f"{hour}:{minute:02d}"
    if form < 0.86:
        return "?"
    if form < 0.93:
        return ""
    return f"{(hour - 1) % 12 + 1:02d}:{minute:02d}:00 {'AM' if hour < 12 else 'PM'}"


def date_text(*, rng: np.random.Generator) -> str:
    """'YYYY-MM-DD' between 1995 and 2020 in the breeding season; 3 % have an unknown day ('YYYY-MM-00')."""
    day = 0 if rng.random() < 0.03 else int(rng.integers(1, 29))
    return f"{int(rng.integers(1995, 2021))}-{int(rng.integers(3, 9)):02d}-{day:02d}"


def call_type(*, rng: np.random.Generator) -> str:
    """The `type` column: a Python list literal such as "['call', 'song']"."""
    weights = np.asarray(CALL_TYPE_WEIGHTS, float)
    return repr(list(CALL_TYPES[int(rng.choice(len(CALL_TYPES), p=weights / weights.sum()))]))


def secondary_codes(*, rng: np.random.Generator, probability: float, subset_share: float,
                    subset: Sequence[str], outside: Sequence[str]) -> tuple[str, ...]:
    """Background species of one recording: none with probability 1 - probability, else 1-3 distinct codes,
    each from `subset` (the other synthesised subset species) with probability subset_share, else from
    `outside` (BirdCLEF 2021 codes outside the subset)."""
    if rng.random() >= probability:
        return ()
    picked: list[str] = []
    for _ in range(int(rng.choice((1, 1, 1, 2, 2, 3)))):
        pool = subset if subset and rng.random() < subset_share else outside
        code = str(pool[int(rng.integers(len(pool)))])
        if code not in picked:
            picked.append(code)
    return tuple(picked)
