"""Hypothesis strategies: arbitrary JSON and fixture bodies with some parts replaced or removed."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from tests.whatsapp.fixtures import body, own_fixture_names, peer_examples

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "text", "image", "reaction", "messages", "statuses", "sent", "failed", "1741952000",
                       "whatsapp_business_account", "edit", "revoke", "interactive", "button_reply", "\x00", "\ud800"])
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)

BODIES: list[dict[str, Any]] = [body(n) for n in own_fixture_names()] + [e[2] for e in peer_examples()]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _mutate(data: Any, path: tuple[Any, ...], replacement: Any, delete: bool) -> Any:
    if not path:
        return replacement
    data = copy.deepcopy(data)
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return data


@st.composite
def mutated_bodies(draw: st.DrawFn) -> Any:
    data: Any = draw(st.sampled_from(BODIES))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        data = _mutate(data, path, draw(json_values), delete=bool(path) and draw(st.booleans()))
    return data
