import pytest
import torch

from mmlab.checks import check_choice, check_fraction, check_same_batch, check_tensor


def test_check_tensor_errors_name_argument_and_shape():
    x = torch.zeros(4, 3)
    assert check_tensor("x", x, ("B", 3)) is x
    with pytest.raises(ValueError, match=r"features must have shape \(B, 5\), got \(4, 3\)"):
        check_tensor("features", x, ("B", 5))
    with pytest.raises(TypeError, match="features must be a torch.Tensor"):
        check_tensor("features", [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        check_tensor("x", torch.tensor([float("nan")]))
    with pytest.raises(TypeError, match="dtype int"):
        check_tensor("ids", x, dtype="int")
    sizes: dict = {}
    check_tensor("a", torch.zeros(2, 5), ("B", "D"), sizes=sizes)
    with pytest.raises(ValueError, match="B=2"):
        check_tensor("b", torch.zeros(3, 5), ("B", "D"), sizes=sizes)


def test_small_checks():
    assert check_same_batch(a=torch.zeros(2), b=torch.zeros(2, 3)) == 2
    with pytest.raises(ValueError, match="a=2, b=3"):
        check_same_batch(a=torch.zeros(2), b=torch.zeros(3))
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        check_fraction("rate", 1.0, closed_right=False)
    with pytest.raises(ValueError, match="mode must be one of"):
        check_choice("mode", "x", ["a", "b"])
