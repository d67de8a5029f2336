"""macos_lite: MaCoSNet (joint weakly supervised semantic matching and object
co-segmentation, Chen et al., TPAMI 2020), rebuilt for teaching and research.

Conventions shared by every module (the README's module map repeats them):

* Images are float tensors in [0, 1], shape ``(B, 3, H, W)``; each backbone
  applies its own ImageNet normalisation.
* Points are ``(x, y)``. Normalised coordinates lie in ``[-1, 1]`` and are
  corner-aligned (``align_corners=True``): pixel 0 maps to -1, pixel W-1 to +1.
  Pixel coordinates are 0-based.
* ``theta_AB`` is regressed from the correlation of ``f_A`` with ``f_B`` and maps
  points of the target B into the source A (backward warping):
  ``p_A = T_AB(p_B)``; ``warp_image(A, theta_AB)`` aligns A onto B.
* Masks leave the network as logits.

The notebooks build it part by part, from notebook 00 (setup and data) on.
"""

__version__ = "0.1.0"
