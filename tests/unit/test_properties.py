"""Properties over generated input: report shaping, the flat view and settings parsing never
fail, and their results keep to what they promise."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from common.settings import TOKEN_PATTERN, parse_token_list
from hub.settings import parse_worker_urls
from worker import reports

pytestmark = pytest.mark.unit
# derandomize: the same examples on every run, so CI is repeatable; for a wider search, turn
# it off and raise max_examples locally.
SETTINGS = settings(max_examples=200, deadline=None, database=None, derandomize=True)

keys = st.sampled_from(["info", "file", "hashes", "name", "value", "classification", "index", "a", "b"])
json_values: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)
entries = st.dictionaries(keys, json_values, max_size=5)
paths = st.lists(st.lists(keys, min_size=1, max_size=4).map(".".join), max_size=6)


def leaves(value: Any, prefix: tuple[str, ...] = ()) -> set[tuple[tuple[str, ...], str]]:
    """(path of dict keys, repr of the leaf) for every leaf; lists are walked through."""
    if isinstance(value, dict):
        return {leaf for key, item in value.items() for leaf in leaves(item, (*prefix, key))}
    if isinstance(value, list):
        return {leaf for item in value for leaf in leaves(item, prefix)}
    return {(prefix, repr(value))}


@SETTINGS
@given(entry=entries, fields=paths)
def test_included_fields_are_a_part_of_the_entry(entry, fields):
    kept = reports.include_fields(entry, fields)
    assert leaves(kept) <= leaves(entry)
    for key in kept:
        assert any(path.split(".")[0] == key for path in fields)


@SETTINGS
@given(entry=entries, fields=paths)
def test_excluded_fields_leave_a_part_of_the_entry_without_them(entry, fields):
    kept = reports.exclude_fields(entry, fields)
    assert leaves(kept) <= leaves(entry)
    for path in fields:
        if "." not in path:
            assert path not in kept


@SETTINGS
@given(report=st.lists(entries, max_size=4), fields=paths, view=st.sampled_from([None, "flat", "extended"]))
def test_shaping_never_fails_on_any_report_and_filter(report, fields, view):
    options = reports.ReportOptions("large", view, tuple(fields) or None, None)
    shaped = reports.shape_report(report, options)
    assert len(shaped) == len(report)


plain_keys = st.sampled_from(["info", "file", "classification", "index", "a", "b"])
# Without hash lists: those are keyed by hash name, so two of one name are one value.
plain_entries = st.dictionaries(
    plain_keys,
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(plain_keys, children, max_size=4),
        max_leaves=20,
    ),
    max_size=5,
)


@SETTINGS
@given(entry=plain_entries)
def test_the_flat_view_has_no_nesting_and_keeps_every_leaf_value(entry):
    flat = reports.flatten(entry)
    assert all(not isinstance(value, dict) for value in flat.values())
    flat_values = {repr(value) for value in flat.values()}
    assert {leaf for _, leaf in leaves(entry)} - {"[]", "{}"} <= flat_values | {repr(None)}


@SETTINGS
@given(text=st.text(max_size=200))
def test_token_lists_parse_to_valid_tokens_or_refuse(text):
    try:
        tokens = parse_token_list(text)
    except ValueError:
        return
    assert all(TOKEN_PATTERN.fullmatch(token) for token in tokens)


@SETTINGS
@given(text=st.text(max_size=120))
def test_worker_url_lists_parse_to_http_urls_or_refuse(text):
    try:
        urls = parse_worker_urls(text)
    except ValueError:
        return
    assert all(url.startswith(("http://", "https://")) for url in urls)
    assert len(set(urls)) == len(urls)


disposition_values = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from('"\\/;= '),
    max_size=12,
)


@SETTINGS
@given(name=disposition_values, filename=st.none() | disposition_values, fast_form=st.booleans())
@example(name="/file", filename="/etc/passwd", fast_form=True)
@example(name="file", filename="\\\\server\\x", fast_form=True)
@example(name="file", filename="a;b=c", fast_form=True)
@example(name="file", filename="a;b;c.pdf", fast_form=True)
@example(name=";;", filename=None, fast_form=True)
def test_the_upload_reads_form_part_names_as_aiohttp_does(name, filename, fast_form):
    """The one-expression fast path for Content-Disposition gives aiohttp's own name and
    file name, whatever the values hold; headers it does not fit go to aiohttp's parser."""
    import warnings

    from aiohttp import BodyPartReader
    from multidict import CIMultiDict, CIMultiDictProxy

    from worker.upload_api import part_names

    if fast_form:
        header = f'form-data; name="{name}"' + ("" if filename is None else f'; filename="{filename}"')
    else:
        header = f"form-data; name={name}" + ("" if filename is None else f"; filename*=utf-8''{filename}")

    def part() -> BodyPartReader:
        headers = CIMultiDictProxy(CIMultiDict({"Content-Disposition": header}))
        return BodyPartReader(b"--x", headers, None)  # type: ignore[arg-type]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # aiohttp warns about malformed headers
        expected = (part().name, part().filename)
        assert part_names(part()) == expected
