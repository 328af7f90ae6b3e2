// Package align registers frames to a reference view of a good part before
// they reach the backbone, so that PaDiM's Gaussians per patch position see
// every part in the same place although parts arrive shifted and rotated a
// little (conveyors, loose fixtures, a knocked camera).
//
// A Reference is built at fit time from normal images (Build): a template
// of their luminance on a small grid (the long side Thumb pixels), averaged
// over the training images after they were registered to each other, at
// their mean pose. A Registrar estimates each frame's rigid transform to it
// on the same small grid:
//
//  1. phase correlation (Kuglin & Hines, 1975) on the coarsest level of a
//     three-level pyramid (a quarter of Thumb) gives the strongest
//     translation hypotheses, whatever the shift;
//  2. each is refined by inverse-compositional Lucas–Kanade (Baker &
//     Matthews, "Lucas-Kanade 20 Years On", IJCV 2004) on the rotation
//     and translation on that level and judged on the next finer one,
//     beside the pose where the reference's good images lay on average,
//     each by its match less a pose prior (Spread: how far the good images
//     lay, so that a periodic fixture's next period does not win); the
//     best is refined coarse to fine, with the
//     intensities of the overlap normalized to zero mean and unit variance
//     at every step, so that exposure and contrast do not move the result
//     (as in the ECC criterion, Evangelidis & Psarakis, PAMI 2008);
//  3. the confidence is the normalized cross-correlation of the registered
//     frame with the template over their overlap (−1..1).
//
// Warp then resamples the frame into the reference's coordinates (at a
// scale the backbone can use, edge pixels replicated where the frame does
// not reach), and WarpBack brings an anomaly map drawn on the aligned frame
// back to the frame's own pixels (a smooth map sampled at knots and
// interpolated between: StepFor).
package align
