"""Random numbers for the discrete-event engine: named streams from one root seed.

Two layers, both free of global state:

1. **Stream keys.**  Every named stream of replicate ``r`` comes from
   ``numpy.random.SeedSequence(root, spawn_key=(r, stable_hash(name)))`` (STYLE.md item 6).
   Replicates are therefore independent, and adding a stream never shifts another.

2. **Numbers keyed by entity.**  A child's numbers are a pure function of
   (stream key, child id, episode, position), computed with the counter-based
   Philox4x32-10 generator (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
   SC 2011; checked against the Random123 known-answer vectors in
   ``tests/unit/test_rng.py``).  Nothing depends on the order in which children are
   drawn or on how many other children exist, so the same child draws the same numbers
   in every scenario (common random numbers, STYLE.md item 7) and in every process.
   A ``numpy.random.Generator`` per child would give the same property but costs about
   17 microseconds to build; a national run has 400,000 children.

Uniforms are ``(word + 0.5) / 2**32`` for a 32-bit Philox output word: never 0 or 1, so
``-log(u)`` is finite (the largest exponential draw is 22.9; P(Exp(1) > 22.9) = 1e-10).
"""

from __future__ import annotations

import hashlib

import numpy as np
from numpy.typing import NDArray

UInt64Array = NDArray[np.uint64]
FloatArray = NDArray[np.float64]

WORDS_PER_BLOCK = 4  # Philox4x32 turns one 4-word counter into 4 output words
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_MULTIPLIERS = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
_WEYL = (0x9E3779B9, 0xBB67AE85)  # key schedule increments (golden ratio, sqrt(3) - 1)
PHILOX_ROUNDS = 10


def stable_hash(name: str) -> int:
    """A 63-bit integer from a stream name, identical on every machine and Python run
    (unlike ``hash()``, which is salted per process)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def stream_seed_sequence(root_seed: int, replicate: int, stream: str) -> np.random.SeedSequence:
    """The seed sequence of one named stream in one replicate."""
    if replicate < 0:
        raise ValueError(f"replicate must be >= 0, got {replicate}")
    return np.random.SeedSequence(root_seed, spawn_key=(replicate, stable_hash(stream)))


def area_seed(root_seed: int, code: str) -> int:
    """The DES root seed of one area: a function of (root seed, area code) only, so an
    area's replicates (seeded from it and the replicate number) never depend on the
    other areas of the run or on the worker that runs them."""
    sequence = np.random.SeedSequence(root_seed, spawn_key=(stable_hash(f"area:{code}"),))
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))


def stream_generator(root_seed: int, replicate: int, stream: str) -> np.random.Generator:
    """A numpy Generator for a named stream (for draws not tied to a child)."""
    return np.random.Generator(np.random.PCG64(stream_seed_sequence(root_seed, replicate,
                                                                    stream)))


def stream_key(root_seed: int, replicate: int, stream: str) -> tuple[int, int]:
    """The two 32-bit Philox key words of a named stream."""
    words = stream_seed_sequence(root_seed, replicate, stream).generate_state(2, np.uint32)
    return int(words[0]), int(words[1])


def philox4x32(counter: tuple[UInt64Array, UInt64Array, UInt64Array, UInt64Array],
               key: tuple[int, int], rounds: int = PHILOX_ROUNDS,
               ) -> tuple[UInt64Array, UInt64Array, UInt64Array, UInt64Array]:
    """Philox4x32 on arrays of counters.

    ``counter`` holds four arrays of 32-bit values stored as uint64 (so the 32 x 32-bit
    products fit without overflow); the result has the same form.
    """
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in counter)
    k0, k1 = key
    for _ in range(rounds):
        product0 = _MULTIPLIERS[0] * c0
        product1 = _MULTIPLIERS[1] * c2
        c0, c1, c2, c3 = ((product1 >> _SHIFT32) ^ c1 ^ np.uint64(k0),
                          product1 & _MASK32,
                          (product0 >> _SHIFT32) ^ c3 ^ np.uint64(k1),
                          product0 & _MASK32)
        k0 = (k0 + _WEYL[0]) & 0xFFFFFFFF
        k1 = (k1 + _WEYL[1]) & 0xFFFFFFFF
    return c0, c1, c2, c3


def keyed_uniforms(key: tuple[int, int], entity_ids: UInt64Array, episode: int | NDArray[
        np.int64], count: int) -> FloatArray:
    """``count`` uniforms in (0, 1) for each entity: shape (len(entity_ids), count).

    Row i depends only on (key, entity_ids[i], episode[i]) -- not on the other rows --
    which is what makes the numbers common across scenarios.  ``episode`` numbers the
    separate uses of one entity (a child's first, second... period of care).
    """
    ids = np.asarray(entity_ids, dtype=np.uint64)
    n = ids.shape[0]
    blocks = -(-count // WORDS_PER_BLOCK)
    episodes = np.broadcast_to(np.asarray(episode, dtype=np.uint64), (n,))
    low = np.repeat(ids & _MASK32, blocks)
    high = np.repeat(ids >> _SHIFT32, blocks)
    third = np.repeat(episodes & _MASK32, blocks)
    block = np.tile(np.arange(blocks, dtype=np.uint64), n)
    words = np.stack(philox4x32((low, high, third, block), key), axis=1)  # (n*blocks, 4)
    uniforms = (words.astype(np.float64) + 0.5) * (1.0 / 4294967296.0)
    return uniforms.reshape(n, blocks * WORDS_PER_BLOCK)[:, :count]
