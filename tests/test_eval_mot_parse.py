"""The vectorised MOT parser gives exactly Python's float() of every field, or names the line."""
from __future__ import annotations

import numpy as np
import pytest

from trackformers.data.mot import _parse_chunks, parse_mot, read_mot


def naive(text: str) -> np.ndarray:
    """Reference: split each non-blank line on commas, float() every field, pad to 9 columns."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if fields[-1] == "":
            fields.pop()
        values = [float(f) for f in fields][:9]
        rows.append(values + [1.0, -1.0, -1.0][len(values) - 6:] if len(values) < 9 else values)
    return np.array(rows, dtype=np.float64).reshape(-1, 9)


def random_token(rng: np.random.Generator, kinds: int) -> str:
    kind = rng.integers(kinds)
    if kind == 0:
        return str(int(rng.integers(-5, 100000)))
    if kind == 1:
        return f"{rng.uniform(-2000, 2000):.{rng.integers(0, 7)}f}"
    if kind == 2:
        return "." + str(int(rng.integers(0, 10 ** 6)))  # no leading digit
    if kind == 3:
        return str(int(rng.integers(0, 1000))) + "."  # no trailing digit
    if kind == 4:
        return f"{rng.uniform(0, 1):.14f}"  # 15 digits: still exact
    if kind == 5:
        return "+" + f"{rng.uniform(0, 50):.3f}"
    return repr(float(rng.uniform(-1, 1)))  # up to 17 digits: falls back to the general parser


@pytest.mark.parametrize("columns", [6, 7, 9, 10])
def test_random_decimals_equal_float(columns):
    rng = np.random.default_rng(columns)
    # Leading/trailing dots, signs, 15 significant digits: all handled by the vectorised path,
    # over several 64 KiB chunks.
    tricky = "\n".join(",".join(random_token(rng, 6) for _ in range(columns)) for _ in range(12000)) + "\n"
    fast = _parse_chunks(tricky.encode())
    assert fast is not None
    np.testing.assert_array_equal(fast, naive(tricky))
    # 17 significant digits: the line-by-line parser takes over, same values.
    long = "\n".join(",".join(random_token(rng, 7) for _ in range(columns)) for _ in range(300)) + "\n"
    assert _parse_chunks(long.encode()) is None
    np.testing.assert_array_equal(parse_mot(long), naive(long))


def test_layout_variants():
    text = "1, 2, 10.5, -3, 4.25, 5\r\n\r\n2,3,.5,6.,-0.0,+7,\n\n3,4,1,2,3,4,0.5,1,0.25"
    got = parse_mot(text)
    np.testing.assert_array_equal(got, naive(text))
    assert got.shape == (3, 9) and np.signbit(got[1, 4])  # -0.0 kept
    assert parse_mot("").shape == parse_mot("\n\n").shape == (0, 9)
    np.testing.assert_array_equal(parse_mot("1 2 3 4 5 6 7\n"), [[1, 2, 3, 4, 5, 6, 7, -1, -1]])
    np.testing.assert_array_equal(parse_mot("1,2,3,4,5,6,7,8,9,10,11\n"), [[1, 2, 3, 4, 5, 6, 7, 8, 9]])
    ragged = "1,2,3,4,5,6\n" * 20000 + "1,2,3,4,5,6,0.5,1,0.25,-1\n"
    np.testing.assert_array_equal(parse_mot(ragged), naive(ragged))
    exotic = "1,2,1e3,4,5,nan\n"
    got = parse_mot(exotic)
    assert got[0, 2] == 1000 and np.isnan(got[0, 5])


@pytest.mark.parametrize("text, line", [
    ("1,2,3,4,5,6\n\n1,2,abc,4,5,6\n", 3),
    ("1,2,3,4,5,6\n1,2,3,4.5.6,5,6\n", 2),
    ("1,2,3,4,5,6\n1,2,3-4,5,6,7\n", 2),
    ("1,2,3,4,5,6\n1,2,,4,5,6\n", 2),
    ("1,2,3,4,5,6\n1,2,.,4,5,6\n", 2),
    ("1,2,3,4,5\n", 1),
    ("1, 2, 3,4,5,6\n1,2,3 4,5,6\n", 2),  # a space inside a field
])
def test_malformed_rows_name_the_line(tmp_path, text, line):
    path = tmp_path / "res.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"^{path}:{line}: "):
        read_mot(path)
