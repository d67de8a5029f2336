"""A learned co-segmentation checked, image by image, against its training-free teacher (DDT).

The decoder D is trained towards DDT's pseudo-masks (:mod:`macos_lite.pseudo_masks`). Where DDT is right, the
student copies it less sharply than the teacher itself (on unseen horses J 0.73 against 0.77, both with the
guided filter); where DDT picks the background (kites in the sky, a gymnast on a mat), the student, which also
sees the match statistics of its partners, is often right and DDT is not. The rule below tells the two cases
apart by a guess that needs no annotation: when the student and the teacher mostly agree, the teacher is
probably on the object and the two are averaged; when they disagree, the rule trusts the student. The guess
helps where the student is the better of the two (iCoseg) and costs where the teacher is (the TSS sample:
docs/results.md, "The student checked by its teacher").

For every checked mask, with ``s`` and ``t`` the student's and the teacher's foreground probabilities at the
image's size:

1. ``a = |s > 0.5  and  t > 0.5| / |s > 0.5  or  t > 0.5|``, the Jaccard index of the two binary masks
   (1 when both are empty);
2. the mask is ``(1 - w) s + w t`` with ``w`` = :data:`TEACHER_WEIGHT` where ``a >= ``:data:`AGREEMENT`, and
   ``s`` elsewhere;
3. then the same post-processing as the reference it is compared with (``refine="edges"``: the guided filter).

The teacher is DDT on the model's own encoder (the one its pseudo-masks were computed with), of the same set
as the student's masks: the whole category for a set method (:class:`~macos_lite.evaluation.SetModelMethod`,
as ``--method ddt`` scores it), the pair for a pair method.

:data:`AGREEMENT` and :data:`TEACHER_WEIGHT` were chosen with the horse-trained ``demo`` model (three
trainings, seeds 0-2) on data it may be chosen on -- iCoseg's 14 *training* groups and the training horses
001-120 -- among agreements 0.1, 0.2, 0.3, 0.4 and weights 0.3, 0.5, 0.7, by the mean of the two J
(docs/results.md, "The student checked by its teacher").

``macos-lite evaluate --checkpoint RUN/last.pt --refine edges --verify ddt``; the JSON counts ``num_trusted``
(masks where the teacher was averaged in) of ``num_checked`` (every mask checked: each image of a set, both
images of each pair a pair method co-segments, including masks the protocol then leaves unscored). Matching
is the wrapped method's. Taught in notebook 10 (interactive demos), beside the teacher it is checked against.
"""

from __future__ import annotations

import copy

import torch

from .. import geometry as G
from ..colocalization import edge_refine

AGREEMENT = 0.3  # Jaccard of the student's and the teacher's binary masks at or above which the teacher is trusted
TEACHER_WEIGHT = 0.5  # the teacher's share of a trusted image's mask


def mask_agreement(p: torch.Tensor, q: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The Jaccard index ``(N,)`` of the binary masks ``p > threshold`` and ``q > threshold``, both ``(N, 1, H, W)``
    (or ``(N, H, W)``) probabilities; 1 where both masks are empty.

    Example:
        >>> p = torch.zeros(1, 1, 2, 2); p[..., 0, :] = 1          # the top row
        >>> q = torch.zeros(1, 1, 2, 2); q[..., :, 0] = 1          # the left column
        >>> mask_agreement(p, q)                                    # 1 cell shared of 3 covered
        tensor([0.3333])
    """
    if p.shape != q.shape:
        raise ValueError(f"the two masks must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    a, b = (p > threshold).flatten(1), (q > threshold).flatten(1)
    inter, union = (a & b).sum(1).double(), (a | b).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).to(p.dtype)


def gate(student: torch.Tensor, teacher: torch.Tensor, agreement: float = AGREEMENT,
         weight: float = TEACHER_WEIGHT) -> tuple[torch.Tensor, torch.Tensor]:
    """``(probabilities (N, 1, H, W), trusted (N,) bool)``: the student's masks, averaged with the teacher's
    (``(1 - weight) * student + weight * teacher``) on the images where the two agree (:func:`mask_agreement`
    ``>= agreement``). Both inputs ``(N, 1, H, W)`` probabilities of the same images at the same size."""
    teacher = teacher.to(student)
    trusted = mask_agreement(student, teacher) >= agreement
    w = torch.where(trusted, weight, 0.0).to(student.dtype).view(-1, *([1] * (student.dim() - 1)))
    return (1 - w) * student + w * teacher, trusted


class TeacherCheckedMethod:
    """``method``'s co-segmentation masks, averaged with its DDT teacher's where the two agree (module docstring).

    method: a :class:`~macos_lite.evaluation.ModelMethod` or :class:`~macos_lite.evaluation.SetModelMethod`
    (its ``refine`` becomes this method's: the wrapped masks are taken raw and post-processed once, after the
    average); teacher: anything with ``masks`` (and ``cosegment_set`` for a set method) returning raw
    probabilities (default: :class:`~macos_lite.evaluation.DDTMethod` on the model's encoder, ``refine="none"``);
    agreement, weight: see :func:`gate`. Raises ``ValueError`` for an agreement outside [0, 1] or a weight
    outside [0, 1].

    Example:
        >>> method = TeacherCheckedMethod(method_from_checkpoint("RUN/last.pt", refine="edges"))  # doctest: +SKIP
        >>> probs = method.cosegment_set(images, labels)                                          # doctest: +SKIP
        >>> method.num_trusted, method.num_checked                                                # doctest: +SKIP
    """

    def __init__(self, method, teacher=None, agreement: float = AGREEMENT, weight: float = TEACHER_WEIGHT,
                 device="cpu"):
        if not 0.0 <= agreement <= 1.0 or not 0.0 <= weight <= 1.0:
            raise ValueError(f"agreement and weight must be in [0, 1], got {agreement} and {weight}")
        self.refine = getattr(method, "refine", "none")
        self.method = copy.copy(method)  # the same model, its masks taken before any post-processing
        self.method.refine = "none"
        if teacher is None:
            from .reference_masks import DDTMethod

            model = getattr(method, "model", None)
            teacher = DDTMethod(refine="none", device=device, encoder=getattr(model, "encoder", None))
        self.teacher, self.agreement, self.weight = teacher, float(agreement), float(weight)
        self.name, self.kind = f"{method.name}+ddt-check", method.kind
        self.num_checked, self.num_trusted = 0, 0

    def __getattr__(self, name):  # image_size, model, checkpoint, transforms: the wrapped method's
        if name == "method":
            raise AttributeError(name)
        return getattr(self.method, name)

    def _checked(self, student: torch.Tensor, teacher: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        size = images.shape[-2:]
        probs, trusted = gate(G.resize(student.float(), size), G.resize(teacher.float(), size),
                              self.agreement, self.weight)
        self.num_checked += len(trusted)
        self.num_trusted += int(trusted.sum())
        return edge_refine(images.float(), probs) if self.refine == "edges" else probs

    @property
    def cosegment_set(self):
        """``(images (N, 3, H, W), labels) -> (N, 1, H, W)``, present when the wrapped method co-segments sets."""
        if not hasattr(self.method, "cosegment_set"):
            raise AttributeError("cosegment_set")
        return self._cosegment_set

    @torch.no_grad()
    def _cosegment_set(self, images: torch.Tensor, labels) -> torch.Tensor:
        return self._checked(self.method.cosegment_set(images, labels), self.teacher.cosegment_set(images, labels),
                             images)

    @torch.no_grad()
    def masks(self, images_A: torch.Tensor, images_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each pair's two masks, each checked against the teacher's co-localisation of the pair."""
        s_A, s_B = self.method.masks(images_A, images_B)
        t_A, t_B = self.teacher.masks(images_A, images_B)
        return self._checked(s_A, t_A, images_A), self._checked(s_B, t_B, images_B)

    @torch.no_grad()
    def transforms_and_masks(self, images_A, images_B):
        """``(theta, prob_A, prob_B)``: the wrapped method's maps and the checked masks."""
        if not hasattr(self.method, "transforms_and_masks"):
            return (self.method.transforms(images_A, images_B), *self.masks(images_A, images_B))
        theta, s_A, s_B = self.method.transforms_and_masks(images_A, images_B)  # one pass of the model
        t_A, t_B = self.teacher.masks(images_A, images_B)
        return theta, self._checked(s_A, t_A, images_A), self._checked(s_B, t_B, images_B)
