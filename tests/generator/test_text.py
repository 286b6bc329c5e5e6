"""Incremental detokenization and stop sequences, on byte-level and SentencePiece-like decoders."""

from __future__ import annotations

import pytest

from services.generator.text import IncrementalDecoder, StopMatcher

# A byte-level vocabulary: each id is some bytes; decoding joins them and replaces broken UTF-8.
VOCAB = {1: b"The", 2: b" caf", 3: "é".encode()[:1], 4: "é".encode()[1:], 5: b" is", 6: "🎉".encode()[:2],
         7: "🎉".encode()[2:], 8: b" open", 9: b"."}  # fmt: skip


def byte_decode(ids: list[int]) -> str:
    return b"".join(VOCAB[i] for i in ids).decode("utf-8", errors="replace")


def sentencepiece_decode(ids: list[int]) -> str:
    """Like Llama/Mistral tokenizers: the first token's leading space is dropped."""
    return byte_decode(ids).removeprefix(" ")


def feed(decoder: IncrementalDecoder, ids: list[int]) -> list[str]:
    return [decoder.add(i) for i in ids]


def test_split_characters_are_held_until_complete() -> None:
    deltas = feed(IncrementalDecoder(byte_decode, [1]), [2, 3, 4, 5, 6, 7, 8, 9])
    assert deltas == [" caf", "", "é", " is", "", "🎉", " open", "."]
    assert "".join(deltas) == byte_decode([2, 3, 4, 5, 6, 7, 8, 9])


def test_leading_space_of_the_first_token_survives_a_stripping_decoder() -> None:
    deltas = feed(IncrementalDecoder(sentencepiece_decode, [1]), [2, 5])
    assert deltas == [" caf", " is"]
    assert sentencepiece_decode([2, 5]) == "caf is"  # what decoding the output alone would have lost


def test_flush_releases_an_incomplete_character_as_the_full_decode_shows_it() -> None:
    decoder = IncrementalDecoder(byte_decode, [1])
    assert feed(decoder, [5, 6]) == [" is", ""]
    assert decoder.flush() == "\ufffd"
    assert decoder.flush() == ""


@pytest.mark.parametrize(
    ("deltas", "stops", "released", "hit_at"),
    [
        (["Hello", " world", "\n", "\nUser"], ["\n\n"], ["Hello", " world", "", ""], 3),
        (["a#", "#", "b"], ["###"], ["a", "", "##b"], None),  # "##b" is no stop: the held text comes back
        (["x", "ST", "OP", "y"], ["STOP"], ["x", "", ""], 2),
        (["one", " two"], ["two", "one"], [""], 0),  # the earliest occurrence wins
        (["abc"], [], ["abc"], None),
    ],
)
def test_stop_matcher(deltas: list[str], stops: list[str], released: list[str], hit_at: int | None) -> None:
    matcher = StopMatcher(stops)
    out = []
    for i, delta in enumerate(deltas):
        text, hit = matcher.feed(delta)
        out.append(text)
        if hit:
            assert i == hit_at
            break
    else:
        assert hit_at is None
        out[-1] += matcher.flush()
    assert out == released
