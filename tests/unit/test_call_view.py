"""The call page's view of a cut robot turn: what was heard and what was not."""

from __future__ import annotations

from voiceplat.storage.records import TurnRecord
from voiceplat.web.calls.view import TurnView


def cut_turn(text: str, heard: str | None) -> TurnView:
    turn = TurnRecord(
        call_id="c", idx=1, role="robot", text=text, heard_text=heard, interrupted=True
    )
    return TurnView(turn=turn, offset_s=0.0, waterfall=None)


def test_the_unheard_rest_follows_what_was_heard() -> None:
    view = cut_turn("Конечно. Приём с девяти до шести.", "Конечно.")
    assert (view.heard, view.unheard, view.heard_matches) == (
        "Конечно.",
        " Приём с девяти до шести.",
        True,
    )


def test_a_sentence_cut_midway_loses_its_ellipsis_before_matching() -> None:
    # The session writes "…" where it cut a sentence; the text itself never has it.
    view = cut_turn("Приём с девяти до шести по будням.", "Приём с девяти…")
    assert view.heard == "Приём с девяти"
    assert view.unheard == " до шести по будням."
    assert view.heard_matches


def test_heard_text_that_is_not_the_start_shows_the_whole_turn_struck() -> None:
    view = cut_turn("Приём с девяти.", "Другое")
    assert not view.heard_matches
    assert view.unheard == "Приём с девяти."


def test_a_turn_that_was_not_cut_has_no_heard_part() -> None:
    turn = TurnRecord(call_id="c", idx=1, role="robot", text="Да.")
    view = TurnView(turn=turn, offset_s=0.0, waterfall=None)
    assert view.heard is None and view.unheard is None
