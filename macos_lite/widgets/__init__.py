"""Interactive demos of the course: each is a plain drawing function plus an ipywidgets wrapper.

* affine warping: ``draw_affine(image, theta, keypoints)``; ``affine_widget(image, keypoints)`` with
  controls ``scale, aspect, rotation, shear, tx, ty`` and the raw ``theta0 .. theta5``;
* TPS control points: ``draw_tps(image, theta, lam)``; ``tps_widget(image, keypoints)`` with ``point,
  dx, dy, lam, surface``;
* correlation explorer: ``draw_correlation(image_A, image_B, row, col)``;
  ``correlation_widget(image_A, image_B)`` with ``row, col, measure``;
* masks (eqs 6 and 10): ``draw_masks(image, prob, threshold)``; ``masks_widget(image, prob, theta)`` with
  ``threshold, binary``;
* matching score (eqs 1-3): ``draw_score(corr, theta, image_size)``; ``score_widget(corr, image_size,
  image_A, image_B)`` with the affine parameters and ``phi``;
* model explorer: ``draw_model(item, model)``; ``model_widget(pairs, model)`` with ``pair, alpha, kind``
  (and ``model`` when given a dict of models).

Every ``draw_*`` returns a matplotlib Figure that pyplot does not keep (nothing leaks, nothing is
shown twice): as the last line of a notebook cell it is displayed, in a script ``fig.savefig(...)``.

Every ``*_widget`` returns a :class:`Demo` (an ``ipywidgets.VBox``): the last line of a cell,
``demo = affine_widget(image, kps); demo``, displays it. Its attributes make it testable without a
browser: ``demo.controls[name].value = ...`` updates it, ``demo.state`` holds the data drawn, and
``demo.figure`` is the one Figure it owns (redrawn in place when the state changed). ``demo.show(static=True)`` displays a
picture of the current figure; front ends that cannot render widgets show that picture too.

Conventions are the package's: images ``(3, H, W)`` in [0, 1], keypoints ``(N, 2)`` 0-based pixels
``(x, y)``, theta maps *target* points into the *source* and ``warp_image(A, theta)`` shows A in the
target frame -- so source keypoints reach the warped image through the *inverse* map.
"""

from ._base import Demo
from .affine import AffineDemo, affine_params, affine_theta, affine_widget, draw_affine
from .correlation import CorrelationDemo, correlation_widget, draw_correlation, encode_pair
from .explorer import ModelDemo, draw_model, model_widget, predict_pair
from .masks import MasksDemo, draw_masks, masks_widget
from .score import ScoreDemo, draw_score, score_widget
from .tps import TPSDemo, draw_tps, tps_theta, tps_widget

__all__ = [
    "AffineDemo",
    "CorrelationDemo",
    "Demo",
    "MasksDemo",
    "ModelDemo",
    "ScoreDemo",
    "TPSDemo",
    "affine_params",
    "affine_theta",
    "affine_widget",
    "correlation_widget",
    "draw_affine",
    "draw_correlation",
    "draw_masks",
    "draw_model",
    "draw_score",
    "draw_tps",
    "encode_pair",
    "masks_widget",
    "model_widget",
    "predict_pair",
    "score_widget",
    "tps_theta",
    "tps_widget",
]
