"""Quantities (`8Gi`, `500m`) and the cgroup values rendered from them: tables of inputs and outputs."""

from __future__ import annotations

import re

import pytest

from reconciler.model.limits import cpu_max, cpuset_list, memory_value
from reconciler.model.quantity import format_bytes, format_millicpus, parse_bytes, parse_millicpus

GI = 2**30
MI = 2**20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8Gi", 8 * GI),
        ("512Mi", 512 * MI),
        ("1Ki", 1024),
        ("1Ti", 2**40),
        ("1G", 10**9),
        ("1M", 10**6),
        ("1k", 1000),
        ("1.5Gi", 1610612736),
        ("0.5Ki", 512),
        (".5Ki", 512),
        ("1048576", MI),
        ("0", 0),
        (4096, 4096),
        (0, 0),
        (2.0, 2),
    ],
)
def test_parse_bytes_accepts_kubernetes_quantities(text: object, expected: int) -> None:
    """Binary and decimal suffixes, fractions that come out whole, and plain ints parse to exact bytes."""
    assert expected == parse_bytes(text)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "must not be negative"),
        (-1.5, "must not be negative"),
        ("-1Gi", "invalid quantity"),
        (True, "not a boolean"),
        (False, "not a boolean"),
        ("8Gx", "invalid quantity '8Gx'"),
        ("8 Gi", "invalid quantity"),
        ("", "invalid quantity"),
        ("Gi", "invalid quantity"),
        ("1.5", "not a whole number of bytes"),
        (1.5, "not a whole number of bytes"),
        ("1.0001Ki", "not a whole number of bytes"),
        ("1m", "'m' (milli) makes no sense for bytes"),
        ("1000m", "'m' (milli) makes no sense for bytes"),
        (None, "must be a number or a quantity string"),
        ([1], "must be a number or a quantity string"),
    ],
)
def test_parse_bytes_rejects_with_a_reason(value: object, message: str) -> None:
    """Negative, boolean, malformed, fractional-byte and milli byte quantities raise ValueError naming the problem."""
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_bytes(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("500m", 500),
        ("1m", 1),
        ("1500m", 1500),
        (0.5, 500),
        ("0.5", 500),
        (".5", 500),
        ("2", 2000),
        (2, 2000),
        (4, 4000),
        ("1.5", 1500),
        ("0.001", 1),
        (0.25, 250),
    ],
)
def test_parse_millicpus_accepts_cores_and_millicores(value: object, expected: int) -> None:
    """Cores (ints, floats, strings) and `m` millicores parse to whole millicores."""
    assert expected == parse_millicpus(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be greater than zero"),
        (0, "must be greater than zero"),
        ("0m", "must be greater than zero"),
        (0.0, "must be greater than zero"),
        (-1, "must not be negative"),
        ("-500m", "invalid quantity"),
        (True, "not a boolean"),
        ("0.0005", "finer than one millicore"),
        (0.0001, "finer than one millicore"),
        ("0.5m", "finer than one millicore"),
        ("1.25m", "finer than one millicore"),
        ("1Gi", "use cores"),
        ("1k", "use cores"),
        ("two", "invalid quantity"),
        (None, "must be a number or a quantity string"),
    ],
)
def test_parse_millicpus_rejects_with_a_reason(value: object, message: str) -> None:
    """Zero, negative, boolean, sub-millicore and byte-suffixed CPU quantities raise ValueError naming the problem."""
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_millicpus(value)


@pytest.mark.parametrize("parse", [parse_bytes, parse_millicpus])
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_non_finite_floats_are_rejected_as_invalid_quantities(parse: object, value: float) -> None:
    """YAML `.inf` / `.nan` are refused with ValueError (a validation error), not a crash."""
    assert callable(parse)
    with pytest.raises(ValueError):  # noqa: PT011 - the type is the point: pydantic only maps ValueError
        parse(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (8 * GI, "8Gi"),
        (512 * MI, "512Mi"),
        (1024, "1Ki"),
        (2**60, "1Ei"),
        (1610612736, "1536Mi"),
        (10**9, "1000000000"),
        (1536, "1536"),
        (1023, "1023"),
        (0, "0"),
    ],
)
def test_format_bytes_uses_the_largest_exact_binary_suffix(value: int, expected: str) -> None:
    """Bytes render with the largest binary suffix that divides them exactly, else as a plain number."""
    assert expected == format_bytes(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2000, "2"), (1000, "1"), (500, "500m"), (1500, "1500m"), (1, "1m"), (0, "0")],
)
def test_format_millicpus_uses_cores_when_whole(value: int, expected: str) -> None:
    """Millicores render as whole cores when possible, else with the `m` suffix."""
    assert expected == format_millicpus(value)


@pytest.mark.parametrize("text", ["8Gi", "512Mi", "1536Mi", "4096", "1Ki", "7"])
def test_format_bytes_round_trips_through_parse_bytes(text: str) -> None:
    """What format_bytes writes, parse_bytes reads back as the same number of bytes."""
    value = parse_bytes(text)
    assert value == parse_bytes(format_bytes(value))


@pytest.mark.parametrize("text", ["500m", "2", "1500m", "1m"])
def test_format_millicpus_round_trips_through_parse_millicpus(text: str) -> None:
    """What format_millicpus writes, parse_millicpus reads back as the same millicores."""
    value = parse_millicpus(text)
    assert value == parse_millicpus(format_millicpus(value))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("", ""),
        ("0", "0"),
        ("0-3", "0-3"),
        ("3,0,1,2", "0-3"),
        ("0,2-4,7", "0,2-4,7"),
        ("7,0-2", "0-2,7"),
        ("1,3,5", "1,3,5"),
        ("0-3,2-5", "0-5"),
        ("0-1,2-3", "0-3"),
        ("5,5,5", "5"),
        ("2-2", "2"),
    ],
)
def test_cpuset_list_is_the_kernels_read_back_form(value: str | None, expected: str) -> None:
    """A CPU list is sorted, deduplicated and compressed into ranges, as the kernel prints `cpuset.cpus`."""
    assert expected == cpuset_list(value)


def test_cpuset_list_rejects_a_reversed_range_with_value_error() -> None:
    """A reversed range such as "3-1" (which the kernel refuses) raises ValueError, not an IndexError."""
    with pytest.raises(ValueError):  # noqa: PT011 - the type is the point
        cpuset_list("3-1")


@pytest.mark.parametrize(
    ("millicpus", "expected"),
    [
        (None, "max 100000"),
        (1000, "100000 100000"),
        (1500, "150000 100000"),
        (500, "50000 100000"),
        (4000, "400000 100000"),
        (250, "25000 100000"),
        (10, "1000 100000"),
        (1, "1000 100000"),
    ],
)
def test_cpu_max_is_quota_and_period_with_the_kernels_minimum(
    millicpus: int | None, expected: str
) -> None:
    """`cpu.max` is "quota period" with a 100 ms period, never below the kernel's 1 ms quota, "max" when unset."""
    assert expected == cpu_max(millicpus)


@pytest.mark.parametrize(
    ("value", "page_size", "expected"),
    [
        (None, 4096, "max"),
        (8 * GI, 4096, str(8 * GI)),
        (4097, 4096, "4096"),
        (3 * 4096 + 4095, 4096, "12288"),
        (1610612736, 65536, "1610612736"),
        (100_000, 65536, "65536"),
    ],
)
def test_memory_value_rounds_down_to_whole_pages(
    value: int | None, page_size: int, expected: str
) -> None:
    """Memory limits are rendered in bytes rounded down to the page size, as the kernel stores them."""
    assert expected == memory_value(value, page_size)
