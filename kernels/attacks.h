// The fgsm technique's attacks, each batched over images (FgsmSettings::attack):
//
// - fgsm: FGSM, and with steps > 1 iterative FGSM (BIM), from the image itself (kernels/fgsm.h).
// - pgd (Madry et al. 2018): iterative FGSM from a random start: L-inf a uniform draw in
//   [-eps, eps] per pixel; L2 a uniform direction (a normalized Gaussian draw) at a uniform
//   radius in [0, eps]; then clipped to [0, 1].
// - mifgsm (Dong et al. 2018): g <- momentum * g + grad / ||grad||_1, steps along g, from the
//   image itself.
// - apgd-ce, apgd-dlr (Croce & Hein 2020, Algorithm 1): from a random start (as pgd's),
//   x1 = P(x0 + eta dir(grad)); then z = P(xk + eta dir(grad)),
//   x(k+1) = P(xk + 0.75 (z - xk) + 0.25 (xk - x(k-1))); eta starts at 2 eps and is halved per
//   image at the checkpoints w_j = ceil(p_j N), p_0 = 0, p_1 = 0.22,
//   p_(j+1) = p_j + max(p_j - p_(j-1) - 0.03, 0.06), when, since the previous checkpoint, the
//   loss rose in fewer than 0.75 (w_j - w_(j-1)) of the steps (condition 1), or eta was not
//   halved there and the best loss did not rise (condition 2); a halving restarts from the
//   best iterate. apgd-dlr ascends the targeted DLR loss
//   -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), once for each of the 9 classes (fewer on
//   smaller models) the clean image scores highest after its own label.
//
// dir(g) is sign(g) for L-inf, g / ||g||_2 for L2; P projects onto the eps-ball around the
// image (L-inf: clamp per pixel; L2: scale the perturbation down to norm eps) and clips to
// [0, 1]. Random starts are drawn per (image, run) from a generator seeded by attack_seed, so an
// image's attack never depends on the batch it is in or on the rank that runs it.
//
// Restarts: each run r = 0..restarts-1 (apgd-dlr, and targeted attacks under target_mode all:
// per target) attacks the images no earlier run broke. An image's result is the first run that
// broke it, else its first run.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "kernels/fgsm.h"
#include "kernels/model.h"
#include "kernels/settings.h"

namespace vizsweep::kernels {

struct AttackResult : FgsmResult {
  // Per step as FgsmResult's rows (row 0 = the clean image; row k = after step k; the last
  // row = the image returned):
  torch::Tensor eta;        // the step size in force after step k (APGD: halved per image)
  torch::Tensor run;        // [B] int64: the run the result is from (restart, or target x restarts + restart)
  torch::Tensor target;     // [B] int64: the target of that run (apgd-dlr, target_mode all); else -1
  torch::Tensor best_loss;  // [B, C, S, S]: APGD's highest-loss iterate of that run (x_max of the
                            // paper); other attacks: the image returned
  torch::Tensor broken;     // [B] bool: the label changed (targeted: reached) under some iterate
                            // the result stands for (APGD: any iterate; others: the image returned)
};

// The seed of image `image_id`'s run `run` under the sweep's `seed`: splitmix64 mixes, 63 bits
// (what torch.Generator().manual_seed takes in a reference implementation).
uint64_t attack_seed(int64_t seed, int64_t image_id, int64_t run);

// The target of image `image_id` (label `label`) under target_mode random: one of the other
// classes, drawn from attack_seed(seed, image_id, -1).
int64_t random_target(int64_t seed, int64_t image_id, int64_t label, int64_t classes);

// The checkpoints of APGD with `steps` iterations, w_1 < w_2 < ... < steps (w_0 = 0 left out).
std::vector<int> apgd_checkpoints(int steps);

// images [B, C, S, S] in [0, 1]; labels [B] int64: true labels, or targets when targeted
// (under target_mode all: the true labels, every other class a target in turn);
// image_ids [B]: the ids the seeds use. Throws vizsweep::Error for bad settings, shapes, labels
// out of range, or apgd-dlr on a model with fewer than 4 classes.
AttackResult attack(const Model& model, const torch::Tensor& images, const torch::Tensor& labels,
                    const std::vector<int64_t>& image_ids, const FgsmSettings& settings);

}  // namespace vizsweep::kernels
