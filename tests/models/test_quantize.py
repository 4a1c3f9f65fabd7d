import numpy as np
import pytest

from stakelearn.errors import InputError
from stakelearn.models.quantize import (
    FIELD_MODULUS,
    FixedPoint,
    dequantize,
    field_element,
    from_field,
    quantize,
    to_field,
)


def test_quantize_rounds_to_nearest_step():
    fp = FixedPoint(scale_bits=2, clip=4.0)  # steps of 0.25, Q = 16
    assert quantize(np.array([0.1, 0.13, -0.374, 1.0]), fp).tolist() == [0, 1, -1, 4]


def test_quantize_error_within_documented_bound():
    fp = FixedPoint(scale_bits=7, clip=1.0)
    x = np.random.default_rng(0).uniform(-1, 1, size=10_000)
    error = np.abs(dequantize(quantize(x, fp), fp) - x)
    assert error.max() <= fp.max_error == 2.0**-8


def test_quantize_clips_beyond_clip():
    fp = FixedPoint(scale_bits=7, clip=1.0)
    assert quantize(np.array([5.0, -3.0]), fp).tolist() == [128, -128]


@pytest.mark.parametrize("bad", [[np.nan, 1.0], [0.0, np.inf], [[1.0, 2.0]], []])
def test_quantize_rejects_bad_input(bad):
    with pytest.raises(InputError):
        quantize(np.array(bad), FixedPoint())


@pytest.mark.parametrize("kwargs", [dict(scale_bits=-1), dict(scale_bits=16), dict(clip=0.0), dict(clip=1e9)])
def test_fixed_point_rejects_bad_format(kwargs):
    with pytest.raises(InputError):
        FixedPoint(**kwargs)


def test_field_encoding_round_trips_signed_values():
    values = np.array([0, 1, -1, 128, -128])
    encoded = to_field(values)
    assert encoded[2] == FIELD_MODULUS - 1
    assert from_field(encoded).tolist() == values.tolist()


def test_field_element_encodes_a_negative_as_the_contracts_read_it():
    p = FIELD_MODULUS
    assert [field_element(v) for v in (0, 16, -1, -8)] == [0, 16, p - 1, p - 8]
    assert field_element(p - 8) == p - 8  # an element already encoded stays
    assert field_element(-(p // 2)) == (p + 1) // 2  # the most negative: above (p - 1) / 2, read as negative
    assert field_element(np.int64(-3)) == p - 3
    for bad in (p, 2**256 - 1, -(p // 2) - 1):  # no element, or a negative the contracts would read as positive
        with pytest.raises(InputError):
            field_element(bad)
