// Adversarial examples (Goodfellow et al. 2015): FGSM, x' = clip(x + eps * sign(grad_x loss)),
// and its iterative form (BIM: steps of size `step_size`, each followed by projection onto
// the L-inf eps-ball around x and clipping to [0, 1]); batched over images.
// Targeted attacks descend the loss of the target label instead.
#pragma once

#include <cstdint>

#include <torch/types.h>

#include "kernels/model.h"
#include "kernels/settings.h"

namespace vizsweep::kernels {

struct FgsmResult {
  torch::Tensor adversarial;  // [B, C, S, S] in [0, 1]
  // Per step, row 0 = the clean image, row k = after step k: [steps + 1, B].
  torch::Tensor pred;         // predicted label (int64)
  torch::Tensor pred_prob;    // its softmax probability
  torch::Tensor label_prob;   // probability of the true label (untargeted) or the target
  torch::Tensor loss;         // cross-entropy against labels
  torch::Tensor margin;       // logit of the label minus the largest other logit (untargeted:
                              // < 0 once fooled; targeted: > 0 once at the target)
  torch::Tensor probs;        // every class's softmax probability: [steps + 1, B, classes]
  double step_size = 0;
};

// images [B, C, S, S] in [0, 1]; labels [B] int64: true labels, or targets when targeted.
// Throws vizsweep::Error for bad settings, shapes or labels out of range.
FgsmResult fgsm(const Model& model, const torch::Tensor& images, const torch::Tensor& labels,
                const FgsmSettings& settings);

}  // namespace vizsweep::kernels
