"""Named random streams and numbers keyed by entity (sim/rng.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from sim import rng

# Random123 known-answer vectors (kat_vectors, philox4x32): rounds, counter, key, output.
PHILOX_KNOWN_ANSWERS = [
    (10, (0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (10, (0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (10, (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    (7, (0, 0, 0, 0), (0, 0), (0x5F6FB709, 0x0D893F64, 0x4F121F81, 0x4F730A48)),
]


@pytest.mark.parametrize(("rounds", "counter", "key", "expected"), PHILOX_KNOWN_ANSWERS)
def test_philox_matches_random123_known_answers(rounds: int, counter: tuple[int, ...],
                                                key: tuple[int, int],
                                                expected: tuple[int, ...]) -> None:
    words = rng.philox4x32(tuple(np.array([c], dtype=np.uint64) for c in counter), key,
                           rounds=rounds)
    assert tuple(int(w[0]) for w in words) == expected


def test_stable_hash_is_the_same_everywhere() -> None:
    # a fixed value: Python's own hash() is salted per process and would break replay
    assert rng.stable_hash("care_episodes") == 606842649585729279
    assert rng.stable_hash("care_episodes") != rng.stable_hash("home_spells")
    assert 0 <= rng.stable_hash("") < 2**63


def test_stream_seed_sequence_is_root_plus_replicate_and_name() -> None:
    sequence = rng.stream_seed_sequence(123, 4, "entry_times")
    reference = np.random.SeedSequence(123, spawn_key=(4, rng.stable_hash("entry_times")))
    assert np.array_equal(sequence.generate_state(4), reference.generate_state(4))
    assert rng.stream_key(123, 4, "entry_times") != rng.stream_key(123, 5, "entry_times")
    assert rng.stream_key(123, 4, "entry_times") != rng.stream_key(123, 4, "care_episodes")
    assert rng.stream_key(124, 4, "entry_times") != rng.stream_key(123, 4, "entry_times")


def test_negative_replicate_is_rejected() -> None:
    with pytest.raises(ValueError, match="replicate must be >= 0, got -1"):
        rng.stream_seed_sequence(1, -1, "x")


def test_stream_generator_is_reproducible() -> None:
    first = rng.stream_generator(7, 0, "a").random(5)
    assert np.array_equal(first, rng.stream_generator(7, 0, "a").random(5))
    assert not np.array_equal(first, rng.stream_generator(7, 1, "a").random(5))


def test_an_entity_draws_the_same_numbers_whoever_else_is_drawn() -> None:
    """Common random numbers: a row depends on its entity only, not on the batch."""
    key = rng.stream_key(1, 0, "care_episodes")
    ids = np.array([5, 99, 2**52 + 3, 7], dtype=np.uint64)
    together = rng.keyed_uniforms(key, ids, 0, 11)
    alone = rng.keyed_uniforms(key, ids[2:3], 0, 11)
    shuffled = rng.keyed_uniforms(key, ids[::-1], 0, 11)
    assert together.shape == (4, 11)
    assert np.array_equal(together[2], alone[0])
    assert np.array_equal(together, shuffled[::-1])
    # fewer numbers are a prefix of more numbers
    assert np.array_equal(rng.keyed_uniforms(key, ids, 0, 3), together[:, :3])


def test_episodes_and_streams_give_different_numbers() -> None:
    key = rng.stream_key(1, 0, "care_episodes")
    ids = np.arange(100, dtype=np.uint64)
    first = rng.keyed_uniforms(key, ids, 0, 4)
    assert not np.any(first == rng.keyed_uniforms(key, ids, 1, 4))
    other = rng.stream_key(1, 0, "home_spells")
    assert not np.any(first == rng.keyed_uniforms(other, ids, 0, 4))
    per_row = rng.keyed_uniforms(key, ids, np.arange(100), 4)
    assert np.array_equal(per_row[0], first[0]) and not np.array_equal(per_row[1], first[1])


def test_keyed_uniforms_look_uniform_and_independent() -> None:
    """Kolmogorov-Smirnov on 400,000 numbers and the correlation of neighbouring ids
    and neighbouring positions (fixed key, so deterministic; thresholds are far out in
    the tails of the null distributions: p < 1e-4, |r| > 5 standard errors)."""
    key = rng.stream_key(20220331, 0, "test")
    u = rng.keyed_uniforms(key, np.arange(100_000, dtype=np.uint64), 0, 4)
    assert u.min() > 0.0 and u.max() < 1.0
    assert scipy.stats.kstest(u.ravel(), "uniform").pvalue > 1e-4
    limit = 5.0 / np.sqrt(u.shape[0])
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < limit
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < limit
    exponential = -np.log(u[:, 0])
    assert scipy.stats.kstest(exponential, "expon").pvalue > 1e-4
