"""CallQuery: the calls list's filters as the API and the page's GET form send them."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from voiceplat.web.calls.json_store import percentile
from voiceplat.web.calls.postgres_store import like_pattern, where_clause
from voiceplat.web.calls.store import CallPage, CallQuery


def error_text(**values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        CallQuery.model_validate(values)
    return str(caught.value)


def test_a_blank_form_means_no_filter() -> None:
    query = CallQuery.model_validate(
        {
            "robot": "",
            "date_from": "",
            "status": "",
            "min_duration_s": "",
            "text": "  ",
            "page": "2",
        }
    )
    assert query.robot is None and query.date_from is None and query.min_duration_s is None
    assert query.status is None
    assert query.text is None  # blank text is no filter, not "calls with any turn"
    assert query.page == 2 and query.per_page == 50 and query.offset == 50


def test_strings_from_the_query_string_are_typed() -> None:
    query = CallQuery.model_validate(
        {
            "date_from": "2026-03-01",
            "date_to": "2026-03-31",
            "min_duration_s": "2.5",
            "per_page": "10",
            "text": " Записаться ",
        }
    )
    assert query.date_from == date(2026, 3, 1) and query.date_to == date(2026, 3, 31)
    assert query.min_duration_s == 2.5 and query.per_page == 10
    assert query.text == "Записаться"


def test_ranges_the_wrong_way_round_are_refused_with_the_values() -> None:
    assert "date_to (2026-03-01) is before date_from (2026-03-05)" in error_text(
        date_from="2026-03-05", date_to="2026-03-01"
    )
    assert "max_duration_s (3) is below min_duration_s (10)" in error_text(
        min_duration_s=10, max_duration_s=3
    )
    # One day is a valid range.
    assert CallQuery(date_from=date(2026, 3, 5), date_to=date(2026, 3, 5)).date_to


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_to": "2026-02-30"}, "date_to"),
        ({"page": 0}, "page"),
        ({"per_page": 0}, "per_page"),
        ({"per_page": 201}, "per_page"),
        ({"min_duration_s": -1}, "min_duration_s"),
        ({"status": "ringing"}, "status"),
        ({"text": "x" * 201}, "text"),
        ({"colour": "red"}, "colour"),  # an unknown filter is an error, not silently ignored
    ],
)
def test_bad_values_name_their_field(values: dict[str, object], field: str) -> None:
    assert field in error_text(**values)


def test_filters_keep_what_was_set_for_the_page_links() -> None:
    query = CallQuery(robot="echo", text="врач", page=3, date_from=date(2026, 3, 1))
    assert query.filters() == {"robot": "echo", "text": "врач", "date_from": "2026-03-01"}
    assert CallQuery(per_page=10).filters() == {"per_page": "10"}


def test_pages_of_a_page() -> None:
    assert CallPage(items=[], total=0, page=1, per_page=50).pages == 1
    assert CallPage(items=[], total=101, page=1, per_page=50).pages == 3


def test_sql_takes_every_filter_as_a_parameter() -> None:
    query = CallQuery(
        robot="x'; DROP TABLE calls; --",
        caller="50%_",
        text="Врач",
        min_duration_s=1,
        max_duration_s=9,
    )
    sql, params = where_clause(query)
    assert "DROP" not in sql and "%" not in sql
    assert params == ["x'; DROP TABLE calls; --", "%50\\%\\_%", 1, 9, "%Врач%"]
    assert sql.count("$5") == 2  # text and heard_text share the pattern
    assert where_clause(CallQuery()) == ("", [])
    assert like_pattern("a\\b") == "%a\\\\b%"


def test_percentile_interpolates_like_percentile_cont() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([400.0, 700.0], 0.5) == 550.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == pytest.approx(3.85)
