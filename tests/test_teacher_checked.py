"""A learned co-segmentation checked against its DDT teacher (evaluation.teacher_checked)."""

import argparse
import json

import pytest
import torch

from macos_lite import evaluate_cli
from macos_lite.evaluation import TeacherCheckedMethod
from macos_lite.evaluation.teacher_checked import AGREEMENT, TEACHER_WEIGHT, gate, mask_agreement


def square(n, top, left, side, value=1.0, size=8):
    """``(n, 1, size, size)`` maps: ``value`` on a square of ``side`` cells at (top, left), 0 elsewhere."""
    m = torch.zeros(n, 1, size, size)
    m[..., top:top + side, left:left + side] = value
    return m


def test_agreement_is_the_jaccard_of_the_binary_masks_by_hand():
    p, q = square(1, 0, 0, 4), square(1, 2, 2, 4)  # 16 cells each, 4 shared: 4 / 28
    assert mask_agreement(p, q).item() == pytest.approx(4 / 28)
    assert mask_agreement(p, p).item() == 1.0
    assert mask_agreement(p, square(1, 4, 4, 4)).item() == 0.0
    assert mask_agreement(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)).item() == 1.0  # both empty agree
    assert mask_agreement(0.4 * p, q).item() == 0.0  # 0.4 is background at the 0.5 threshold
    with pytest.raises(ValueError, match="same shape"):
        mask_agreement(p, torch.zeros(1, 1, 4, 4))


def test_an_agreement_equal_to_the_threshold_trusts_the_teacher():
    student = torch.zeros(1, 1, 8, 8)
    student[..., 0, :] = 1
    student[..., 1, :2] = 1                          # 10 cells
    teacher = torch.zeros(1, 1, 8, 8)
    teacher[..., 0, :3] = 1                          # 3 of them: Jaccard 3 / 10 exactly
    assert gate(student, teacher, agreement=0.3)[1].tolist() == [True]
    assert gate(student, teacher, agreement=0.31)[1].tolist() == [False]


def test_the_teacher_is_averaged_in_only_where_it_agrees():
    student = torch.cat((square(1, 0, 0, 4, 0.9), square(1, 0, 0, 4, 0.9)))
    teacher = torch.cat((square(1, 0, 0, 5, 0.7), square(1, 4, 4, 4, 0.7)))  # 16/25 agree; then 0
    probs, trusted = gate(student, teacher, agreement=0.5, weight=0.25)
    assert trusted.tolist() == [True, False]
    torch.testing.assert_close(probs[0], 0.75 * student[0] + 0.25 * teacher[0])
    torch.testing.assert_close(probs[1], student[1])
    # at the defaults (chosen on training data) a 16/25 agreement trusts the teacher half and half
    assert 0 < AGREEMENT <= 16 / 25 and TEACHER_WEIGHT == 0.5
    torch.testing.assert_close(gate(student, teacher)[0][0], (student[0] + teacher[0]) / 2)


class FixedPairs:
    """A stand-in pair method: fixed 8 x 8 masks (resized to the images' size); records each call's refine."""

    name, kind, image_size = "fixed", "cascade", (64, 64)

    def __init__(self, masks, refine="none"):
        self.probs, self.refine, self.calls = masks, refine, []

    def masks(self, images_A, images_B):
        self.calls.append(("pair", self.refine))
        return self.probs[:len(images_A)], self.probs[len(images_A):]

    def transforms(self, images_A, images_B):
        return torch.zeros(len(images_A), 6)


class FixedSet(FixedPairs):
    """The same, co-segmenting a whole set at once."""

    def cosegment_set(self, images, labels):
        self.calls.append(("set", self.refine))
        return self.probs


def test_a_set_method_is_checked_image_by_image_at_the_images_size():
    images = torch.rand(3, 3, 16, 16)
    student = torch.cat((square(1, 0, 0, 4, 0.9), square(1, 0, 0, 4, 0.9), square(1, 0, 0, 4, 0.2)))
    teacher = torch.cat((square(1, 0, 0, 4, 0.6), square(1, 4, 4, 4, 0.6), square(1, 0, 0, 4, 0.2)))
    wrapped = FixedSet(student, refine="edges")
    method = TeacherCheckedMethod(wrapped, teacher=FixedSet(teacher))
    method.refine = "none"  # compare before the guided filter
    probs = method.cosegment_set(images, [0, 0, 0])
    assert probs.shape == (3, 1, 16, 16) and method.num_checked == 3 and method.num_trusted == 2
    up = torch.nn.functional.interpolate  # the 8 x 8 maps at 16 x 16, as geometry.resize does
    s, t = (up(m, size=(16, 16), mode="bilinear", align_corners=True) for m in (student, teacher))
    torch.testing.assert_close(probs[0], (s[0] + t[0]) / 2)  # agree: averaged
    torch.testing.assert_close(probs[1], s[1])               # disjoint: the student's
    torch.testing.assert_close(probs[2], (s[2] + t[2]) / 2)  # both empty agree
    # the wrapped masks are taken raw; the wrapped method itself is left as it was
    assert method.method.calls == [("set", "none")] and wrapped.refine == "edges"
    assert TeacherCheckedMethod(wrapped, teacher=FixedSet(teacher)).refine == "edges"
    assert method.name == "fixed+ddt-check" and method.image_size == (64, 64)


def test_a_pair_method_has_no_set_path_and_checks_both_masks():
    student = torch.cat((square(1, 0, 0, 4, 0.9), square(1, 0, 0, 4, 0.9)))
    teacher = torch.cat((square(1, 0, 0, 4, 0.6), square(1, 4, 4, 4, 0.6)))
    method = TeacherCheckedMethod(FixedPairs(student), teacher=FixedPairs(teacher))
    assert not hasattr(method, "cosegment_set")  # the evaluation then scores pairs
    images = torch.rand(1, 3, 8, 8)
    theta, prob_A, prob_B = method.transforms_and_masks(images, images)
    assert theta.shape == (1, 6) and method.num_checked == 2 and method.num_trusted == 1
    # each image checked against the teacher's mask of that image: A agrees (averaged), B does not (student's)
    torch.testing.assert_close(prob_A[0], (student[0] + teacher[0]) / 2)
    torch.testing.assert_close(prob_B[0], student[1])
    with pytest.raises(ValueError, match="agreement and weight"):
        TeacherCheckedMethod(FixedSet(student), teacher=FixedSet(teacher), weight=1.5)


def parse(argv):
    parser = argparse.ArgumentParser()
    evaluate_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_verify_ddt_writes_the_counts(tmp_path):
    from macos_lite.checkpoints import model_checkpoint, save_checkpoint
    from macos_lite.model import MaCoSNet

    model = MaCoSNet("lite", image_size=64, pretrained=False, decoder_input="cooccurrence")
    path = save_checkpoint(tmp_path / "tiny.pt", model_checkpoint(model))
    out = tmp_path / "tiny.json"
    args = parse(["--dataset", "synthetic", "--checkpoint", str(path), "--verify", "ddt", "--json", str(out),
                  "--max-pairs", "3", "--device", "cpu", "--quiet"])
    assert evaluate_cli.run(args) == 0
    s = json.loads(out.read_text())
    assert s["method"]["name"] == "tiny+ddt-check" and 0 <= s["num_trusted"] <= s["num_checked"]
    assert s["num_checked"] > 0 and 0 <= s["jaccard"] <= 1


@pytest.mark.parametrize("argv, says", [
    (["--dataset", "pf-willow", "--checkpoint", "x.pt", "--verify", "ddt"], "--verify ransac"),
    (["--dataset", "weizmann-horse", "--checkpoint", "x.pt", "--verify", "ransac"], "--verify ddt"),
    (["--dataset", "icoseg", "--method", "ddt", "--verify", "ddt"], "--checkpoint"),
    (["--dataset", "icoseg", "--checkpoint", "x.pt", "--verify", "ddt", "--verify-size", "240"], "--verify ransac"),
])
def test_cli_refuses_a_check_that_does_not_fit(argv, says, capsys):
    assert evaluate_cli.run(parse(argv)) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def tiny_model():
    from macos_lite.model import MaCoSNet

    torch.manual_seed(0)
    return MaCoSNet("lite", image_size=64, pretrained=False, decoder_input="cooccurrence").eval()


def test_the_extremes_are_the_student_alone_and_the_teacher_alone_after_the_same_filter(tiny_model):
    """weight 0: exactly the student with the guided filter; agreement 0 and weight 1: exactly DDT with it."""
    from macos_lite.evaluation import DDTMethod, SetModelMethod

    torch.manual_seed(1)
    images, labels = torch.rand(4, 3, 64, 64), [0, 0, 1, 1]
    student = SetModelMethod(tiny_model, refine="edges")
    alone = TeacherCheckedMethod(student, weight=0.0).cosegment_set(images, labels)
    torch.testing.assert_close(alone, student.cosegment_set(images, labels))
    teacher = DDTMethod(refine="edges", encoder=tiny_model.encoder).cosegment_set(images, labels)
    torch.testing.assert_close(TeacherCheckedMethod(student, agreement=0.0, weight=1.0).cosegment_set(images, labels),
                               teacher)
    assert student.refine == "edges"  # the wrapped method is left as it was
