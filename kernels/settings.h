// Hyperparameters of the techniques, as plain data: no torch here, so sweep files can be
// parsed and validated (sweeps/) without LibTorch. The kernels take these structs as is.
#pragma once

#include <limits>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace vizsweep::kernels {

enum class ObjectiveKind {
  CentreUnit,   // the unit at the spatial centre (H/2, W/2) of its channel (Yosinski)
  ChannelMean,  // the mean of the channel over all positions
};
const char* objective_kind_name(ObjectiveKind kind);
// "centre" or "channel_mean"; throws vizsweep::Error naming field "objective".
ObjectiveKind parse_objective_kind(const std::string& name);

enum class LrPolicy {
  Constant,  // step = lr * grad
  Progress,  // step = min(lr, target / ||grad||^2) * grad: first-order gain = target
  Normalized,  // step = lr * grad / mean|grad|: pixels move about lr per step, whatever the
               // model's gradient scale (as a careful PyTorch user writes it)
  Adam,        // Adam (Kingma & Ba 2015) ascending: step = lr * m_hat / (sqrt(v_hat) + 1e-8), with
               // adam_beta1/adam_beta2; pixels move about lr grey levels per step (Lucid's optimizer)
};
const char* lr_policy_name(LrPolicy p);
// "constant", "progress", "normalized" or "adam"; throws vizsweep::Error naming field "lr_policy".
LrPolicy parse_lr_policy(const std::string& name);

// How activation maximization represents the image it optimizes.
enum class ImageParam {
  Pixel,  // the pixels themselves (Yosinski et al. 2015)
  Fft,    // a scaled 2-D spectrum rendered through a sigmoid (Olah et al. 2017, Lucid)
  Maco,   // the spectrum's phase under a fixed magnitude (Fel et al. 2023)
};

struct ActMaxSettings {
  std::string name = "custom";
  int iterations = 200;
  LrPolicy lr_policy = LrPolicy::Constant;
  double lr = 100.0;              // constant: the rate; progress: its cap
  double progress_target = 2.0;   // progress policy only
  double decay = 0.0;             // L2 decay per step, [0, 1)
  double blur_radius = 0.0;       // Gaussian sigma in pixels; 0 = off
  int blur_every = 0;             // blur every k steps
  double norm_pct = 0.0;          // clip small norm percentile; 0 = off
  double contrib_pct = 0.0;       // clip small contribution percentile; 0 = off
  double init_std = 10.0;         // initial noise, pixel scale 0..255
  // Added in schema 1.2 (in a task key only when not at these defaults):
  double adam_beta1 = 0.9;        // adam policy: decay of the gradient's running mean
  double adam_beta2 = 0.999;      // adam policy: decay of the squared gradient's running mean
  double jitter = 0;              // transformation robustness: every step, each image is
                                  // translated by a random (dy, dx) in [-jitter, jitter] pixels
                                  // before the forward pass (wrap-around; against `background`
                                  // under pad); a size (transform_pixels); 0 = off
  ImageParam param = ImageParam::Pixel;
  double decay_power = 1.0;       // fft: the spectrum's scale is 1 / max(f, 1/size)^decay_power
  // Added in schema 1.3: random scaling and rotation about the image centre, every step after
  // jitter (Lucid's order), the uncovered border at `background`; 0 = off.
  double scale = 0.0;             // each image scaled by a factor in [1 - scale, 1 + scale], [0, 1)
  double rotate = 0.0;            // and rotated by an angle in [-rotate, rotate] degrees, [0, 180]
  // Added in schema 1.4:
  double pad = 0.0;               // the transforms act on the image framed by `pad` pixels of
                                  // `background`, and the model sees the centre of the result (a
                                  // size, transform_pixels); 0 = off
  bool decorrelate = false;       // fft on 3-channel models: the channels are Lucid's decorrelated
                                  // colour basis (the ImageNet colour covariance's square root)
  double background = 0.5;        // the empty image's grey level, (0, 1): what a zero fft
                                  // spectrum renders to and what pad, scale and rotation fill in
                                  // (Lucid: 0.5; Fashion-MNIST's background is black)
  bool flip = false;              // every step, each image mirrored left-right with probability
                                  // 1/2 (first of the transforms): for models trained with flips
  // Added in schema 1.6:
  // The values of hyperparameters declared without a field here (the transforms of
  // kernels/optvis/transforms/, each one row of the table in settings.cpp); one not set is at
  // its declared default (extra_param).
  std::map<std::string, double> extra;
  double diversity_weight = 3;    // under actmax.diversity N > 1: the weight of Lucid's diversity
                                  // penalty (kernels/optvis/objective.h) against the unit's activation
};

// The value of a hyperparameter declared without a struct field (ActMaxSettings::extra), or its
// declared default; throws vizsweep::Error naming `name` when no such row is declared.
double extra_param(const ActMaxSettings& s, const std::string& name);

// A transform size (jitter, pad) in pixels for an input of `size` pixels: a value below 1 is
// a fraction of the input size (rounded to the nearest pixel), so one sweep works at 32 and
// 224 px; 1 or more is whole pixels.
int transform_pixels(double value, int64_t size);

// Checks every field; throws vizsweep::Error naming the first bad one.
void validate(const ActMaxSettings& s);
// Named settings: "unregularized" (plain gradient ascent, normalized steps of 2 grey levels,
// 200 iterations), "yosinski1".."yosinski4" (Table 1 of Yosinski et al. 2015, as published)
// and "olah2017" (Lucid's defaults, Olah et al. 2017: fft with decorrelated colour, Adam
// 0.05, 512 steps, pad 12 and jitter 8 of 224 px as fractions of the input, scale 0.9-1.1,
// rotate +-10 degrees). Throws vizsweep::Error listing the names.
ActMaxSettings actmax_preset(const std::string& name);
std::vector<std::string> actmax_preset_names();

struct InversionSettings {
  std::string name = "custom";
  int iterations = 200;
  double lr = 0.01;                   // initial learning rate (pixel space [0, 1])
  double momentum = 0.9;
  std::vector<double> lr_steps = {0.5, 0.75};  // fractions of the run where lr is cut
  double lr_decay = 0.1;              // factor applied at each step
  double alpha = 6.0;
  double beta = 2.0;
  double l_alpha = 1e-5;
  double l_tv = -1.0;                 // < 0: by depth, as in the paper (0.5 up to block 3, x10 per block after, max 50)
  double init_std = 0.01;             // initial noise around the mean image, pixel space
  bool normalize_grad = true;         // scale each image's gradient to unit mean |g| (robust lr across layers)
  // Added in schema 1.6 (activation maximization's parameterizations, kernels/optvis/param.h):
  ImageParam param = ImageParam::Pixel;  // pixel, or fft: the image as a 1/f-scaled spectrum (a spectral prior)
  double decay_power = 1.0;              // fft: the spectrum's scale is 1 / max(f, 1/size)^decay_power
};

// Throws vizsweep::Error naming the first bad field.
void validate(const InversionSettings& s);
// The attacks of the fgsm technique (kernels/fgsm.h, kernels/attacks.h).
enum class Attack {
  Fgsm,     // FGSM (Goodfellow et al. 2015); with more steps iterative FGSM (BIM), from the image
  Pgd,      // PGD (Madry et al. 2018): iterative FGSM from a random start in the ball, restarts
  MiFgsm,   // MI-FGSM (Dong et al. 2018): steps along an accumulated L1-normalized gradient
  ApgdCe,   // APGD (Croce & Hein 2020) on the cross-entropy
  ApgdDlr,  // APGD on the targeted DLR loss, once per target: the top 9 other classes
};
const char* attack_name(Attack a);
enum class AttackNorm { Linf, L2 };
// Which class a targeted attack aims at: (label + target_offset) mod classes; a class drawn at
// random (seeded by the image's id); the class the clean image scores lowest; or every other
// class in turn, one run each (the image counts as broken when any run reaches its target).
enum class TargetMode { Offset, Random, LeastLikely, All };

struct FgsmSettings {
  double eps = 0.1;        // budget, pixel space: L-inf in [0, 1]; L2 the ball's radius
  int steps = 1;           // 1 = FGSM; > 1 = iterative FGSM (BIM)
  double step_size = 0.0;  // 0 = automatic (effective_step_size)
  bool targeted = false;   // labels are targets: move towards them
  // Added in schema 1.8 (in a task key only when not at these defaults):
  Attack attack = Attack::Fgsm;
  AttackNorm norm = AttackNorm::Linf;
  int restarts = 1;        // pgd, apgd-*: runs from independent random starts per image (per
                           // target under apgd-dlr); the image counts as broken when any run breaks it
  double momentum = 1.0;   // mifgsm: the accumulated gradient's decay factor mu
  int seed = 0;            // random starts: image i's run r starts from a generator seeded by
                           // (seed, i, r) alone (kernels/attacks.h: attack_seed)
  TargetMode target_mode = TargetMode::Offset;  // targeted attacks only
};

// Checks the fields; throws vizsweep::Error naming the bad one (eps outside [0, 1], ...).
void validate(const FgsmSettings& s);
// The step size an attack takes: step_size when set; else FGSM eps, iterative FGSM and PGD
// min(eps, 2.5 eps / steps), MI-FGSM eps / steps; APGD starts at 2 eps and halves its own.
double effective_step_size(const FgsmSettings& s);

// Hyperparameters by name, for sweep files and the index. A value is a number or, for
// choices (lr_policy), a string. Names are the struct fields' names.
//
// Each hyperparameter is declared once, in one table per technique (settings.cpp): name,
// type, range, default, "off" value, help, and whether it is in every task key. That table
// drives parsing (set_param), validation (the range checks of validate and of the
// regularizers' constructors), the canonical task key (key_params), the index's settings
// columns (params_of), `vizsweep params` and the test that compares the ranges with the
// schema's CHECK constraints.
using ParamValue = std::variant<double, std::string>;
struct ParamInfo {
  std::string name;
  enum Kind { Int, Real, Choice, RealList, Bool } kind;
  std::vector<std::string> choices;  // Choice only
  // Range of a number (Int, Real; each item of a RealList). Infinite bounds are no bound;
  // every number must be finite. The checks that depend on another field (blur_every when
  // blur_radius > 0, progress_target under the progress policy) stay in validate().
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;
  std::string note;          // appended to a range error, e.g. "(pixel space)"
  ParamValue default_value;  // the value of a default-constructed settings struct
  std::string off;           // the value that switches the step off; empty when always on
  std::string help;
  // In every task key: the hyperparameters of schema 1.1, whose keys hashed every value. A
  // hyperparameter added later enters the key only when it is not at its default, so adding
  // one leaves the keys of existing results (and their spec hash) unchanged.
  bool always_in_key = true;
  // A transform's hyperparameter (kernels/optvis/transform.h): its name is the transform's,
  // which actmax.transform_order may name.
  bool transform = false;

  bool in_range(double v) const;
  std::string range_text() const;    // "[0, 1)", ">= 1", "> 0"; "" when unbounded
  // Throws vizsweep::Error naming the hyperparameter when v is outside the range; `prefix`
  // goes before the reason ("setting grid: ").
  void check(double v, const std::string& prefix = "") const;
};
const std::vector<ParamInfo>& actmax_params();     // iterations, lr_policy, lr, ...
// The transforms' names (the actmax hyperparameters marked transform), in the table's order.
std::vector<std::string> transform_names();
const std::vector<ParamInfo>& inversion_params();  // iterations, lr, momentum, ...
const std::vector<ParamInfo>& fgsm_params();       // eps, steps, step_size, targeted, attack, ...
// The declaration of one hyperparameter of a table; throws vizsweep::Error naming `name`
// (and listing the valid names) when there is none.
const ParamInfo& param_info(const std::vector<ParamInfo>& table, const std::string& name);

// Sets one field; throws vizsweep::Error naming `name` for an unknown name, a wrong type
// or an integer field given a fraction. RealList values are comma-separated strings.
void set_param(ActMaxSettings& s, const std::string& name, const ParamValue& v);
void set_param(InversionSettings& s, const std::string& name, const ParamValue& v);
void set_param(FgsmSettings& s, const std::string& name, const ParamValue& v);

// Every field as (name, value), in the order of *_params(): the settings tables' columns.
std::vector<std::pair<std::string, ParamValue>> params_of(const ActMaxSettings& s);
std::vector<std::pair<std::string, ParamValue>> params_of(const InversionSettings& s);
std::vector<std::pair<std::string, ParamValue>> params_of(const FgsmSettings& s);
// What a task key hashes: params_of without the hyperparameters that are not always in the
// key and are at their default.
std::vector<std::pair<std::string, ParamValue>> key_params(const ActMaxSettings& s);
std::vector<std::pair<std::string, ParamValue>> key_params(const InversionSettings& s);
std::vector<std::pair<std::string, ParamValue>> key_params(const FgsmSettings& s);

// A value as the canonical string and the index store it: numbers in round-trip precision.
std::string param_text(const ParamValue& v);

// "name=value;..." over params_of with numbers in round-trip precision: equal strings
// mean equal settings. The setting's own name is not part of it.
std::string canonical(const std::vector<std::pair<std::string, ParamValue>>& params);
std::string format_number(double v);

}  // namespace vizsweep::kernels
