import pytest

from treadle.errors import InputError
from treadle.stages.resize import Size


@pytest.mark.parametrize(
    ("size", "current", "expected"),
    [
        (Size(instances=5), 2, 5),
        (Size(scale_up=2), 3, 5),
        (Size(scale_down=2), 3, 1),
        (Size(scale_down=9), 3, 0),
        (Size(scale_pct=50), 3, 5),
        (Size(scale_pct=-25), 4, 3),
        (Size(scale_pct=-10), 4, 3),
        (Size(scale_pct=10), 4, 5),
        (Size(scale_pct=-100), 4, 0),
    ],
)
def test_each_mode_computes_the_new_size(size, current, expected):
    assert size.check().apply(current, largest=99) == expected


@pytest.mark.parametrize(
    "size", [Size(), Size(instances=1, scale_up=1), Size(instances=-1), Size(scale_pct=-150)]
)
def test_exactly_one_valid_mode(size):
    with pytest.raises(InputError):
        size.check()


def test_scale_to_cluster_takes_the_largest() -> None:
    assert Size(scale_to_cluster=True).check().apply(2, largest=5) == 5
