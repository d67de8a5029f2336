"""macos_lite.data.imageio: conversions against hand-made images, .flo, .mat, CSV and error messages."""

import struct

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from macos_lite.data.imageio import (
    DataError,
    DataNotFoundError,
    load_image,
    load_mask,
    load_mat,
    parse_numbers,
    read_csv,
    read_flo,
    write_flo,
)


def save(tmp_path, name, image, **kw):
    path = tmp_path / name
    image.save(path, **kw)
    return path


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.array([[0, 51, 255], [102, 204, 153]], dtype=np.uint8)
    out = load_image(save(tmp_path, "g.png", Image.fromarray(gray, "L")))
    assert out.shape == (3, 2, 3) and out.dtype == torch.float32
    for c in range(3):
        assert torch.allclose(out[c], torch.tensor(gray / 255.0, dtype=torch.float32))


def test_binary_image(tmp_path):
    bits = Image.fromarray(np.array([[0, 255], [255, 0]], dtype=np.uint8)).convert("1")
    out = load_image(save(tmp_path, "b.png", bits))
    assert out[:, 0, 1].tolist() == [1.0, 1.0, 1.0] and out[:, 0, 0].tolist() == [0.0, 0.0, 0.0]


def test_rgba_drops_alpha_without_compositing(tmp_path):
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (10, 20, 30, 0)  # fully transparent: colour kept as stored
    rgba[0, 1] = (200, 100, 50, 128)
    out = load_image(save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")))
    assert out.shape == (3, 1, 2)
    assert torch.allclose(out[:, 0, 0] * 255, torch.tensor([10.0, 20.0, 30.0]))
    assert torch.allclose(out[:, 0, 1] * 255, torch.tensor([200.0, 100.0, 50.0]))


def test_gray_with_alpha(tmp_path):
    la = Image.fromarray(np.array([[[80, 0], [160, 255]]], dtype=np.uint8), "LA")
    out = load_image(save(tmp_path, "la.png", la))
    assert torch.allclose(out[:, 0, 0] * 255, torch.full((3,), 80.0))
    assert torch.allclose(out[:, 0, 1] * 255, torch.full((3,), 160.0))


def test_palette_image_uses_the_palette_colours(tmp_path):
    image = Image.fromarray(np.array([[0, 1], [1, 2]], dtype=np.uint8), "P")
    image.putpalette([255, 0, 0, 0, 0, 255, 0, 128, 0] + [0] * (256 * 3 - 9))
    out = load_image(save(tmp_path, "p.png", image)) * 255
    assert out[:, 0, 0].tolist() == [255, 0, 0]
    assert out[:, 0, 1].tolist() == [0, 0, 255]
    assert out[:, 1, 1].tolist() == [0, 128, 0]


def test_palette_with_transparency(tmp_path):
    image = Image.fromarray(np.array([[0, 1]], dtype=np.uint8), "P")
    image.putpalette([9, 9, 9, 200, 100, 0] + [0] * (256 * 3 - 6))
    out = load_image(save(tmp_path, "pt.png", image, transparency=0)) * 255
    assert out[:, 0, 0].tolist() == [9, 9, 9] and out[:, 0, 1].tolist() == [200, 100, 0]


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    path = save(tmp_path, "d.png", Image.fromarray(values))
    assert Image.open(path).mode.startswith("I")
    out = load_image(path)
    expected = torch.tensor(values / 65535.0, dtype=torch.float32)
    assert torch.allclose(out[0], expected) and torch.equal(out[0], out[2])
    assert out[0, 0, 1] < 0.02  # PIL's own convert("RGB") would give 1.0 (clipped at 255)


def test_32bit_integer_image(tmp_path):
    values = np.array([[0, 65535, 13107]], dtype=np.int32)
    out = load_image(save(tmp_path, "i.tif", Image.fromarray(values, "I")))
    assert torch.allclose(out[1], torch.tensor([[0.0, 1.0, 0.2]]))


def test_cmyk(tmp_path):
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255], [0, 255, 255, 0]]], dtype=np.uint8)
    out = load_image(save(tmp_path, "c.tif", Image.fromarray(cmyk, "CMYK"))) * 255
    assert out[:, 0, 0].tolist() == [255, 255, 255]  # no ink: white
    assert out[:, 0, 1].tolist() == [0, 255, 255]  # cyan
    assert out[:, 0, 2].tolist() == [0, 0, 0]  # black
    assert out[:, 0, 3].tolist() == [255, 0, 0]  # magenta + yellow: red


def test_png_mask_threshold_zero(tmp_path):
    path = save(tmp_path, "m.png", Image.fromarray(np.array([[0, 1, 255], [0, 0, 7]], dtype=np.uint8)))
    mask = load_mask(path)
    assert mask.shape == (1, 2, 3) and mask.dtype == torch.float32
    assert mask[0].tolist() == [[0, 1, 1], [0, 0, 1]]
    assert load_mask(path, threshold=100)[0].tolist() == [[0, 0, 1], [0, 0, 0]]


def test_jpeg_mask_threshold_127(tmp_path):
    blocks = np.kron(np.array([[0, 100], [200, 255]], dtype=np.uint8), np.ones((16, 16), dtype=np.uint8))
    mask = load_mask(save(tmp_path, "m.jpg", Image.fromarray(blocks), quality=95))
    assert mask[0, ::16, ::16].tolist() == [[0, 0], [1, 1]]  # 100 is background for JPEG masks


def test_colour_mask_uses_brightest_channel(tmp_path):
    rgb = np.zeros((1, 2, 3), dtype=np.uint8)
    rgb[0, 1] = (128, 0, 0)
    assert load_mask(save(tmp_path, "c.png", Image.fromarray(rgb)))[0].tolist() == [[0, 1]]


def test_flo_round_trip_keeps_unknown_values(tmp_path):
    flow = torch.randn(5, 7, 2)
    flow[0, 0] = 1e10
    write_flo(tmp_path / "sub" / "f.flo", flow)
    back = read_flo(tmp_path / "sub" / "f.flo")
    assert back.shape == (5, 7, 2) and back.dtype == torch.float32 and torch.equal(back, flow)


def test_flo_layout_written_by_hand(tmp_path):
    values = np.arange(2 * 3 * 2, dtype="<f4")  # h=2, w=3: u, v interleaved, row-major
    path = tmp_path / "h.flo"
    path.write_bytes(struct.pack("<fii", 202021.25, 3, 2) + values.tobytes())
    flow = read_flo(path)
    assert flow.shape == (2, 3, 2)
    assert flow[0, 1].tolist() == [2.0, 3.0]  # pixel (x=1, y=0)
    assert flow[1, 0].tolist() == [6.0, 7.0]  # pixel (x=0, y=1)


def test_flo_bad_magic_names_the_file(tmp_path):
    path = tmp_path / "bad.flo"
    path.write_bytes(struct.pack("<fii", 1.0, 1, 1) + b"\0" * 8)
    with pytest.raises(DataError, match=r"bad\.flo.*magic"):
        read_flo(path)


def test_flo_truncated_names_the_file(tmp_path):
    path = tmp_path / "short.flo"
    path.write_bytes(struct.pack("<fii", 202021.25, 4, 4) + b"\0" * 10)
    with pytest.raises(DataError, match=r"short\.flo.*4x4"):
        read_flo(path)


def test_write_flo_rejects_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        write_flo(tmp_path / "x.flo", np.zeros((4, 4, 3)))


@pytest.mark.parametrize("reader", [load_image, load_mask, read_flo, lambda p: load_mat(p, ["x"])])
def test_missing_file_names_file_and_fix(tmp_path, reader):
    path = tmp_path / "nowhere" / "file.xyz"
    with pytest.raises(DataNotFoundError, match=r"nowhere.file\.xyz.*macos-lite download") as info:
        reader(path)
    assert isinstance(info.value, FileNotFoundError)


def test_missing_file_names_the_dataset_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="macos-lite download tss"):
        load_image(tmp_path / "a.png", dataset="tss")


def test_corrupt_image_names_the_file(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"this is not an image")
    with pytest.raises(DataError, match=r"broken\.png.*(corrupt|download)"):
        load_image(path)


def test_truncated_image_names_the_file(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    full = save(tmp_path, "full.png", Image.fromarray(noise))
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[:300])
    with pytest.raises(DataError, match=r"cut\.png"):
        load_image(cut)


def test_load_mat_fields_and_errors(tmp_path):
    path = tmp_path / "a.mat"
    scipy.io.savemat(path, {"kps": np.array([[1.0, 2.0], [np.nan, np.nan]]), "bbox": np.array([[1, 2, 3]])})
    data = load_mat(path, ["kps", "bbox"])
    assert data["kps"].shape == (2, 2) and np.isnan(data["kps"][1]).all() and data["bbox"].shape == (1, 3)
    with pytest.raises(DataError, match=r"a\.mat.*missing field.*'pts_coord'.*found \['bbox', 'kps'\]"):
        load_mat(path, ["pts_coord"])
    garbage = tmp_path / "g.mat"
    garbage.write_bytes(b"\x00\x01garbage" * 20)
    with pytest.raises(DataError, match=r"g\.mat.*corrupt"):
        load_mat(garbage, ["kps"])


def test_read_csv_and_numbers(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a,b\n1,2;3\n\n4,5\n")
    columns, rows = read_csv(path, ["a", "b"])
    assert columns == ["a", "b"] and [line for line, _ in rows] == [2, 4]
    assert parse_numbers(rows[0][1]["b"], "here").tolist() == [2.0, 3.0]
    with pytest.raises(DataError, match=r"p\.csv.*missing column.*'XA'"):
        read_csv(path, ["a", "XA"])
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match=r"p\.csv, line 3: the number of values"):
        read_csv(path)
    with pytest.raises(DataError, match=r"file\.csv, line 3, column 'XA'.*'x'"):
        parse_numbers("1;x", "file.csv, line 3, column 'XA'")
