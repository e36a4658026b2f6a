"""Hypothesis strategies shared by the fuzz tests: JSON a peer may send.

Random JSON alone rarely gets past a decoder's first `isinstance` check. Two kinds reach the code
that digs into nested fields, where shape bugs live: valid messages of the protocol with parts
replaced, dropped or added (`mutations`), and objects whose keys and strings are mostly the
protocol's own words (`json_objects`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

# JSON numbers as Python's json reads them: NaN and ±Infinity included (json.loads accepts them).
NUMBERS = st.integers() | st.floats(allow_nan=True, allow_infinity=True)
SCALARS = st.none() | st.booleans() | NUMBERS | st.text(max_size=20)


@functools.cache
def _json_values(vocabulary: tuple[str, ...], max_leaves: int) -> st.SearchStrategy[Any]:
    words = st.sampled_from(list(vocabulary)) if vocabulary else st.nothing()
    keys = words | st.text(max_size=8)
    leaves = SCALARS | words
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6)
        ),
        max_leaves=max_leaves,
    )


def json_values(vocabulary: Sequence[str] = (), max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """Any JSON value; dict keys and strings drawn often from `vocabulary`. (Strategies are
    built once per vocabulary: building them is most of what drawing from them costs.)"""
    return _json_values(tuple(vocabulary), max_leaves)


def json_objects(vocabulary: Sequence[str] = ()) -> st.SearchStrategy[dict[str, Any]]:
    words = st.sampled_from(list(vocabulary)) if vocabulary else st.nothing()
    return st.dictionaries(words | st.text(max_size=8), json_values(vocabulary), max_size=8)


_DROPPED = object()


def mutations(value: Any, vocabulary: Sequence[str] = ()) -> st.SearchStrategy[Any]:
    """`value` (a valid message) with any of its parts kept, replaced by any JSON, or (in an
    object) dropped, and keys added."""
    anything = json_values(vocabulary, max_leaves=4)
    inner: st.SearchStrategy[Any]
    if isinstance(value, dict):
        fields = {
            key: st.just(item) | mutations(item, vocabulary) | st.just(_DROPPED)
            for key, item in value.items()
        }
        extra = st.dictionaries(st.text(max_size=6), anything, max_size=2)
        inner = st.builds(
            lambda kept, added: {**added, **{k: v for k, v in kept.items() if v is not _DROPPED}},
            st.fixed_dictionaries(fields),
            extra,
        )
    elif isinstance(value, list):
        inner = st.tuples(*(mutations(item, vocabulary) for item in value)).map(list)
    else:
        inner = st.just(value)
    return inner | anything


def json_texts(
    vocabulary: Sequence[str] = (), templates: Sequence[Any] = ()
) -> st.SearchStrategy[str]:
    """Text a peer may send: valid messages mutated, JSON objects of the vocabulary, any JSON,
    or any text at all."""
    shaped = st.one_of([mutations(template, vocabulary) for template in templates])
    encoded = (json_objects(vocabulary) | json_values(vocabulary)).map(json.dumps)
    return (shaped.map(json.dumps) if templates else st.nothing()) | encoded | st.text(max_size=40)


def chunked(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """`data` cut into pieces at arbitrary points (a TCP stream's reads)."""
    if not data:
        return st.just([])
    cuts = st.lists(st.integers(0, len(data)), max_size=8).map(sorted)
    return cuts.map(
        lambda points: [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    )
