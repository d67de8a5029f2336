"""The correlation layer: appearance similarity S_AB of every pair of feature cells.

``S_AB[b, k_A, i_B, j_B] = <f_A(k_A), f_B(i_B, j_B)>`` for L2-normalised descriptors: one channel per
cell of A, laid out on B's grid -- the "3D" layout of CNNGeo/WeakAlign. The channel index is
**column-major** in A, ``k_A = row_A + h_A * col_A``, the order the published regression weights
expect. Then ReLU and an L2 normalisation over the channels at every cell of B.

``S_BA = correlation(f_B, f_A)`` is *not* a transpose of ``S_AB``: it is normalised over B's cells.

Taught in notebook 01 (features and correlation).
"""

from __future__ import annotations

import torch

from .backbones import l2_normalize


def raw_correlation(f_A: torch.Tensor, f_B: torch.Tensor) -> torch.Tensor:
    """Dot products of every A cell with every B cell, ``(B, h_A * w_A, h_B, w_B)`` (column-major A index).

    f_A: ``(B, C, h_A, w_A)``, f_B: ``(B, C, h_B, w_B)``.
    """
    if f_A.dim() != 4 or f_B.dim() != 4:
        raise ValueError(f"features must be (B, C, h, w), got {tuple(f_A.shape)} and {tuple(f_B.shape)}")
    if f_A.shape[:2] != f_B.shape[:2]:
        raise ValueError(f"features must share batch size and channels, got {tuple(f_A.shape)} and {tuple(f_B.shape)}")
    b, c, h_a, w_a = f_A.shape
    h_b, w_b = f_B.shape[-2:]
    a = f_A.transpose(2, 3).reshape(b, c, h_a * w_a)  # flattening (w, h) gives k = row + h * col
    corr = torch.bmm(a.transpose(1, 2), f_B.reshape(b, c, h_b * w_b))
    return corr.view(b, h_a * w_a, h_b, w_b)


def correlation(f_A: torch.Tensor, f_B: torch.Tensor, normalize_features: bool = False) -> torch.Tensor:
    """S_AB: ReLU + L2-normalised correlation, ``(B, h_A * w_A, h_B, w_B)``.

    Pass already L2-normalised features (as the model does), or ``normalize_features=True``.

    Example:
        >>> f_A, f_B = torch.randn(1, 8, 3, 4), torch.randn(1, 8, 5, 6)
        >>> S = correlation(f_A, f_B, normalize_features=True)
        >>> tuple(S.shape)                        # one channel per cell of A, on B's 5 x 6 grid
        (1, 12, 5, 6)
        >>> norms = S.norm(dim=1)                 # unit length at every cell of B (or all zero)
        >>> bool(torch.allclose(norms[norms > 0], torch.tensor(1.0)))
        True
    """
    if normalize_features:
        f_A, f_B = l2_normalize(f_A), l2_normalize(f_B)
    return l2_normalize(torch.relu(raw_correlation(f_A, f_B)))


def channel_to_cell(k: int, grid_h: int) -> tuple[int, int]:
    """The (row, col) of A's cell behind channel ``k`` of S_AB (column-major).

    Example:
        >>> channel_to_cell(7, grid_h=3)  # 7 = row 1 + 3 * col 2
        (1, 2)
    """
    return k % grid_h, k // grid_h


def cell_to_channel(row: int, col: int, grid_h: int) -> int:
    """The channel of S_AB that holds A's cell (row, col).

    Example:
        >>> cell_to_channel(1, 2, grid_h=3)
        7
    """
    return row + grid_h * col
