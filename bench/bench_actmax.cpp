// vizsweep-bench-actmax: activation maximization throughput of the kernels on torchvision's
// VGG16 (built-in architecture, seeded random weights), the workload of
// bench/peer_actmax.py: the centre unit (conv) or the unit (fc), L2 decay 1e-4 and a Gaussian
// blur (sigma 0.5) every 4 steps, normalized gradient steps. Robustness is off (shift 0), as
// the peer has none; each call still computes the final activation, the argmax flag and the
// image metrics, which the peer does not. Also the executed FLOP/s of the loop against the
// peak a large oneDNN convolution reaches in the same process.
//
//   vizsweep-bench-actmax [--layers conv1_2,conv2_2,...] [--units 4] [--iters 10] [--size 224]
//                         [--threads 2] [--crop 1] [--device cpu|cuda] [--peak | --peak-only] [--project N]
//                         [--precision fp32|bf16|fp16] [--channels-last 0|1] [--check 0|1] [--rounds N]
//                         [--param-cost [--crop-only]]
//
// --precision / --channels-last: the layers compute in that format (Model::set_compute);
// --peak then times the convolution in it too. Each layer also runs once on an fp32 NCHW
// copy of the model from the same seed (unless --check 0), and a line says how far the
// results moved:
//   check layer=L precision=P channels_last=C image_max_diff=D reached=R
// image_max_diff: the largest pixel difference of the final images (pixels in [0, 1]);
// reached: the objective of this run's final images, evaluated by the fp32 model, over the
// fp32 run's final objective (1 = the same optimum reached).
//
// --project N: the projected wall time to map every unit of VGG16 (all 13 conv and 3 fc
// layers, 13,416 units, one setting, N iterations) on this device, from measured per-layer
// throughput: per layer, tasks of --units units timed at 2 and 4 iterations give the fixed
// and the per-iteration cost; the layer's time is its task count x (fixed + N x per
// iteration). Robustness is on here (the sweep default), as in a real task.
//
// Prints one line per layer:
//   vizsweep layer=L units=U iters=I size=S crop=HxW seconds=T unit_iters_per_s=R gflops=G
//            gflops_slowest=A gflops_fastest=B rounds=N
// (--rounds 0: the whole call alone, no gflops fields)
// seconds and unit_iters_per_s time the whole call; gflops is the loop's own rate (the time of
// a run with twice the iterations minus that of one with --iters, the median of --rounds such
// pairs; the slowest and fastest round beside it), counting the work on the crop.
// and with --peak:  peak conv gflops=P shapes=N (the fastest of five VGG16 convolution shapes
// and of the N convolutions the loops of --layers execute at --units images, each on its own,
// the best of 5 runs: the loop, made of such convolutions, cannot outrun them);
// --peak-only measures no loop and prints each shape's rate before that line:
//   peak shape=BxCxHxW->K gflops=G
// bench/run_bench.py runs it next to the plain-PyTorch peer and prints the ratios.
//
// --param-cost: per layer, the loop's time per iteration (the difference of runs of 2x and
// 1x --iters) at the same batch of --units, all with Adam and uncropped (the forward work
// the same for all three: the crop, which they all use in a sweep, is timed apart), under
//   pixel: the pixels optimized; fft: Lucid's spectrum through a sigmoid;
//   fft+transforms: olah2017's parameterization and transforms (decorrelated colour, pad,
//   jitter, scale 0.9-1.1, rotate +-10 degrees);
// and prints their ratios to pixel:
//   param_cost layer=L units=U pixel_ms=A fft_ms=B transforms_ms=C fft_ratio=B/A transforms_ratio=C/A
// plus both on the receptive-field crop, as a sweep runs them (pixel_crop_ms,
// transforms_crop_ms, crop_ratio; the same as uncropped where the field covers the image).
// --param-cost --crop-only [--rounds N]: the crop's two columns alone, N times (3 by default),
// each line measured in its own round; on the CPU also render_ms, one forward and backward
// pass of the spectral render at the same batch on its own (the whole spectrum, the
// window's rows), and render_share, render_ms / pixel_crop_ms: the render's size against
// the pixel step. Not a floor for crop_ratio: the fft step leaves out work the pixel step
// does (clamping the pixels to the valid range, copying the crop's gradient into the
// image's), and in the loop the render's inputs may be cold.
// --pool-cost [--rounds N]: per max-pooling stage of the model (2 x 2, stride 2), on the
// activations that --units images bring to it, one forward and backward pass of LibTorch's
// max_pool2d against the project's (model.h's max_pool2x2, which the stages use on the
// CPU), for two kinds of image: uniform noise and a smooth one (a blurred noise image):
//   pool layer=L input=NxCxHxW image=noise|smooth torch_ms=A own_ms=B speedup=A/B
// the median of N rounds (3 by default) of 20 passes each, the two timed alternately.
// --tune: per layer, the decision `vizsweep tune` makes (kernels/tune.h), for a machine with
// only LibTorch (bench/gpu_check.sh): --units units of the peer's workload at --iters
// iterations in every compute format the device has, each on its own copy of the model, the
// quality guard against fp32 NCHW, and the format chosen:
//   tune layer=L format=F seconds=T speedup=X reached=R min_unit=M hf_diff=H guard=pass|FAIL|reference [why]
//   tune layer=L chosen=F speedup=X
// --model FILE: a TorchScript model (e.g. models/fashion_vgg11.pt) instead of VGG16; its
// own input size.
#include <algorithm>
#include <chrono>
#include <map>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "kernels/actmax.h"
#include "kernels/error.h"
#include "kernels/model.h"
#include "kernels/spectral.h"
#include "kernels/tune.h"

using namespace vizsweep::kernels;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// Forward + input-gradient FLOPs of the truncated network for one image on an input of
// side `side` (a crop or the whole image): convolutions and linear layers, counted at the
// crop's own output sizes (2 FLOPs per multiply-add, backward to the input = forward).
double loop_flops(const Model& m, int upto, int64_t h, int64_t w) {
  const auto& layers = m.layers();
  const double full = static_cast<double>(m.input_size());
  double f = 0;
  for (int i = 0; i <= upto; ++i) {
    const auto& L = layers[static_cast<size_t>(i)];
    double scale = L.spatial() ? (static_cast<double>(h) / full) * (static_cast<double>(w) / full) : 1.0;
    if (L.kind == LayerKind::Conv || L.kind == LayerKind::Linear) f += L.flops * scale;
  }
  return 2.0 * f;  // forward + backward to the input
}

// A 3x3 convolution (stride 1, padding 1) as the loop runs it: channels in and out, the
// output's side, the batch.
struct ConvShape {
  int64_t in, out, side, batch;
};

// The convolutions the loop executes for `batch` images of `layer` on an input of side `h`
// (the crop's, or the whole image): every convolution on the path, at its cropped size.
std::vector<ConvShape> loop_shapes(const Model& m, const LayerInfo& layer, int64_t h, int64_t batch) {
  std::vector<ConvShape> v;
  int64_t in = m.info().in_channels;
  const double full = static_cast<double>(m.input_size());
  for (const auto& L : m.layers()) {
    if (L.index > layer.index) break;
    if (L.kind != LayerKind::Conv) continue;
    v.push_back({in, L.units, std::max<int64_t>(1, std::llround(static_cast<double>(L.shape[1]) * static_cast<double>(h) / full)),
                 batch});
    in = L.units;
  }
  return v;
}

// FLOP/s of 3x3 convolutions, forward and backward to the input, as the optimization loop
// runs them: the machine's peak for this kind of work through oneDNN (CPU) or cuDNN (CUDA)
// is the fastest of them, each the best of `reps` runs. The shapes: five of VGG16's (64
// channels at 56 px in cache up to 512 channels at 14 px; 256 -> 256 at 56 px, batch 8, the
// largest) and `extra`, every convolution the measured loops execute. A loop of
// convolutions cannot run faster than its fastest convolution alone, so a loop rate above
// this bound is noise, not work (a single shape is no bound: small convolutions that stay
// in cache can outrun a large one).
double peak_conv_flops(const torch::Device& dev, int reps, Model::Precision precision, bool channels_last,
                       std::vector<ConvShape> extra = {}, bool verbose = false) {
  torch::NoGradGuard no_weights_grad;
  const auto dtype = precision_dtype(precision);
  const auto format = channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  std::vector<ConvShape> shapes{{64, 64, 56, 4}, {128, 128, 42, 4}, {256, 256, 56, 8}, {256, 256, 28, 8}, {512, 512, 14, 8}};
  for (const auto& e : extra) {
    const bool seen = std::any_of(shapes.begin(), shapes.end(), [&](const ConvShape& s) {
      return s.in == e.in && s.out == e.out && s.side == e.side && s.batch == e.batch;
    });
    if (!seen) shapes.push_back(e);
  }
  double best = 0;
  for (const ConvShape& sh : shapes) {
    double fastest = 0;
    const int64_t S = sh.side, B = sh.batch;
    auto w = (torch::randn({sh.out, sh.in, 3, 3}, torch::TensorOptions().device(dev)) * 0.01).to(dtype).contiguous(format);
    const double flops = 2.0 * 2.0 * static_cast<double>(sh.out * sh.in * 9 * S * S * B);
    // The input and the output's gradient are made once, outside the timing: drawing them is
    // no part of a convolution (at 256 channels and 56 px, randn alone was a tenth of the time).
    auto x = torch::randn({B, sh.in, S, S}, torch::TensorOptions().device(dev)).to(dtype).contiguous(format).requires_grad_(true);
    torch::Tensor dy;
    {
      torch::NoGradGuard ng;
      dy = torch::ones_like(torch::conv2d(x, w, {}, 1, 1));
    }
    auto run = [&] {
      torch::AutoGradMode on(true);
      auto y = torch::conv2d(x, w, {}, 1, 1);
      return torch::autograd::grad({y}, {x}, {dy})[0];
    };
    run();  // warm-up
    for (int r = 0; r < reps; ++r) {
      sync(dev);
      auto t0 = Clock::now();
      run();
      sync(dev);
      fastest = std::max(fastest, flops / std::chrono::duration<double>(Clock::now() - t0).count());
    }
    if (verbose)
      std::printf("peak shape=%lldx%lldx%lldx%lld->%lld gflops=%.2f\n", static_cast<long long>(B), static_cast<long long>(sh.in),
                  static_cast<long long>(S), static_cast<long long>(S), static_cast<long long>(sh.out), fastest / 1e9);
    best = std::max(best, fastest);
  }
  return best;
}

// The peer's workload on `units` units of `layer`: normalized steps, L2 decay 1e-4, a
// Gaussian blur (sigma 0.5) every 4 steps, noise of std 0.1 in pixel space.
ActMaxRequest peer_request(const std::string& layer, int64_t units) {
  ActMaxRequest req;
  req.layer = layer;
  for (int64_t u = 0; u < units; ++u) req.units.push_back(u);
  req.settings.lr_policy = LrPolicy::Normalized;
  req.settings.lr = 1;
  req.settings.decay = 1e-4;
  req.settings.blur_radius = 0.5;
  req.settings.blur_every = 4;
  req.settings.init_std = 0.1 * 255;
  return req;
}

// Seconds of one activation_maximization call of `req` at n iterations.
double timed(const Model& m, const ActMaxRequest& req, int n, const torch::Device& dev) {
  ActMaxRequest r = req;
  r.settings.iterations = n;
  sync(dev);
  auto t0 = Clock::now();
  activation_maximization(m, r);
  sync(dev);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Seconds per forward and backward pass of the spectral render (spectral.h) for `units`
// images of the model, for the rows of the centre unit's receptive field of `layer` (all
// rows without one): the median of 5 runs of 20.
double render_cost(const Model& m, const std::string& layer, int64_t units) {
  const int64_t S = m.input_size(), C = m.info().in_channels, K = S / 2 + 1;
  if (!SpectralRender::supported(S)) return 0.0;
  const LayerInfo& L = m.layer(layer);
  const auto win = L.shape.size() == 3 ? m.input_window(L.index, L.shape[1] / 2, L.shape[2] / 2) : std::nullopt;
  const int64_t r0 = win ? win->y0 : 0, r1 = win ? win->y1 : S;
  SpectralRender render(S, std::vector<float>(S * K, 1.0f / S), C == 3 ? std::vector<float>(9, 0.3f) : std::vector<float>{}, 0.0f);
  auto spec = torch::randn({2, S, K, units, C}) * 0.01;
  std::vector<double> v;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i) {
      auto in = spec.detach().requires_grad_(true);
      auto band = spectral_render_band(render, in, r0, r1);
      auto g = torch::autograd::grad({band.sum()}, {in});
    }
    v.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 20);
  }
  std::sort(v.begin(), v.end());
  return v[2];
}

// Milliseconds per forward and backward pass of LibTorch's max pooling and of max_pool2x2 on
// x: the medians of `rounds` rounds of 20 passes each.
std::pair<double, double> pool_cost(const torch::Tensor& x, int rounds) {
  auto pass = [&](bool own) {
    auto in = x.detach().requires_grad_(true);
    auto y = own ? max_pool2x2(in) : torch::max_pool2d(in, {2, 2}, {2, 2});
    return torch::autograd::grad({y}, {in}, {torch::ones_like(y)})[0];
  };
  std::vector<double> a, b;
  for (int r = 0; r < rounds + 1; ++r) {
    for (int own = 0; own < 2; ++own) {
      const auto t0 = Clock::now();
      for (int i = 0; i < 20; ++i) pass(own != 0);
      const double ms = std::chrono::duration<double>(Clock::now() - t0).count() / 20 * 1e3;
      if (r > 0) (own ? b : a).push_back(ms);  // round 0 warms up
    }
  }
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return {a[a.size() / 2], b[b.size() / 2]};
}

// The loop's seconds per iteration: runs of 2n and n iterations, the difference over n, for
// each of `repeat` such pairs (at least one), fastest first.
std::vector<double> per_iteration_rounds(const Model& m, const ActMaxRequest& req, int n, int repeat, const torch::Device& dev) {
  std::vector<double> v;
  for (int r = 0; r < std::max(1, repeat); ++r) v.push_back((timed(m, req, 2 * n, dev) - timed(m, req, n, dev)) / n);
  std::sort(v.begin(), v.end());
  return v;
}

// Their median.
double per_iteration(const Model& m, const ActMaxRequest& req, int n, int repeat, const torch::Device& dev) {
  const auto v = per_iteration_rounds(m, req, n, repeat, dev);
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string layers = "conv1_2,conv2_2,conv3_3,conv4_3,conv5_3,fc8", device = "cpu", model_file;
  int units = 4, iters = 10, size = 224, threads = 2, crop = 1;
  bool peak = false, peak_only = false, param_cost = false, tune = false, crop_only = false, pool = false;
  int rounds = 3;
  int project = 0, channels_last = 0, check_format = 1;
  std::string precision = "fp32";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "vizsweep-bench-actmax: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    auto integer = [&]() {
      std::string v = next();
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0') {
        std::fprintf(stderr, "vizsweep-bench-actmax: %s expects an integer, got '%s'\n", a.c_str(), v.c_str());
        std::exit(2);
      }
      return static_cast<int>(n);
    };
    if (a == "--layers") layers = next();
    else if (a == "--units") units = integer();
    else if (a == "--iters") iters = integer();
    else if (a == "--size") size = integer();
    else if (a == "--threads") threads = integer();
    else if (a == "--crop") crop = integer();
    else if (a == "--device") device = next();
    else if (a == "--peak") peak = true;
    else if (a == "--peak-only") peak = peak_only = true;
    else if (a == "--param-cost") param_cost = true;
    else if (a == "--crop-only") crop_only = true;
    else if (a == "--rounds") rounds = integer();
    else if (a == "--tune") tune = true;
    else if (a == "--pool-cost") pool = true;
    else if (a == "--model") model_file = next();
    else if (a == "--project") project = integer();
    else if (a == "--precision") precision = next();
    else if (a == "--channels-last") channels_last = integer();
    else if (a == "--check") check_format = integer();
    else {
      std::fprintf(stderr, "vizsweep-bench-actmax: unknown option %s (see the header of bench/bench_actmax.cpp)\n", a.c_str());
      return 2;
    }
  }
  if (units < 1 || iters < 1 || size < 32 || threads < 1 || project < 0 || rounds < 0) {
    std::fprintf(stderr, "vizsweep-bench-actmax: --units, --iters >= 1, --size >= 32, --threads >= 1, --project, --rounds >= 0\n");
    return 2;
  }
  try {
    set_threads(threads);
    torch::Device dev(device);
    VggOptions o;  // torchvision's VGG16, seeded random weights
    o.input_size = size;
    Model m = model_file.empty() ? Model::builtin(o) : Model::load(model_file);
    m.to(dev);
    const Model::Precision prec = parse_precision(precision, "--precision");
    m.set_compute(prec, channels_last != 0);
    const bool check = check_format != 0 && (prec != Model::Precision::Fp32 || channels_last != 0);
    std::optional<Model> ref;  // fp32 NCHW, the same weights before conversion
    if (check) ref = Model::builtin(o), ref->to(dev);
    if (pool) {
      if (!dev.is_cpu()) throw std::invalid_argument("--pool-cost: the CPU only (the GPU keeps LibTorch's pooling)");
      const int64_t S = m.input_size(), C = m.info().in_channels;
      auto gen = at::detail::createCPUGenerator(1);
      auto noise = torch::rand({units, C, S, S}, gen);
      auto k = torch::ones({C, 1, 9, 9}) / 81.0;  // a 9 x 9 box blur per channel, twice
      auto smooth = torch::conv2d(torch::conv2d(noise, k, {}, 1, 4, 1, C), k, {}, 1, 4, 1, C);
      smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min());
      for (const auto& [image, x] : {std::pair<const char*, torch::Tensor>{"noise", noise}, {"smooth", smooth}}) {
        const auto outs = [&] {
          torch::NoGradGuard ng;
          return m.forward_all(x);
        }();
        for (const auto& L : m.layers()) {
          if (L.kind != LayerKind::MaxPool || L.index == 0) continue;
          const auto& in = outs[static_cast<size_t>(L.index) - 1];
          if (in.dim() != 4 || in.size(2) < 2 || in.size(3) < 2) continue;
          const auto [a, b] = pool_cost(in.contiguous(), rounds);
          std::printf("pool layer=%s input=%ldx%ldx%ldx%ld image=%s torch_ms=%.3f own_ms=%.3f speedup=%.2f\n",
                      L.alias.c_str(), static_cast<long>(in.size(0)), static_cast<long>(in.size(1)),
                      static_cast<long>(in.size(2)), static_cast<long>(in.size(3)), image, a, b, a / b);
          std::fflush(stdout);
        }
      }
      return 0;
    }
    if (tune) {
      std::map<std::string, Model> copies;  // one model per format, converted once
      auto in_format = [&](const ComputeFormat& format) -> const Model& {
        const ComputeFormat f{format.precision, format.channels_last};  // the weights' format
        auto it = copies.find(f.name());
        if (it != copies.end()) return it->second;
        Model c = model_file.empty() ? Model::builtin(o) : Model::load(model_file);
        c.to(dev);
        c.set_compute(parse_precision(f.precision), f.channels_last);
        return copies.emplace(f.name(), c).first->second;
      };
      std::vector<FormatTrial> skipped;
      const auto formats = candidate_formats(dev.is_cuda(), &skipped);
      for (const auto& t : skipped) std::printf("tune skipped format=%s why=%s\n", t.format.name().c_str(), t.why.c_str());
      const Model& ref = in_format(ComputeFormat{});
      for (const auto& name : split(layers)) {
        const ActMaxRequest req = peer_request(name, std::min<int64_t>(units, m.layer(name).units));
        auto probe = [&](const ComputeFormat& f, bool warm_up) {
          ActMaxRequest r = req;
          r.settings.iterations = warm_up ? 2 : iters;
          r.fp32_model = &ref, r.fp32_finish = f.fp32_finish;
          const Model& mf = in_format(f);
          sync(dev);
          const auto t0 = Clock::now();
          ActMaxResult res = activation_maximization(mf, r);
          sync(dev);
          FormatProbe p;
          p.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
          torch::NoGradGuard ng;
          UnitObjective obj(ref, ref.layer(name), r.units, r.objective.unit_kind());
          auto v = obj.evaluate(ref.forward(res.images, ref.layer(name).index)).to(torch::kCPU, torch::kDouble).contiguous();
          auto hf = res.hf_energy.to(torch::kCPU, torch::kDouble).contiguous();
          p.objective.assign(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
          p.hf_energy.assign(hf.data_ptr<double>(), hf.data_ptr<double>() + hf.numel());
          return p;
        };
        const LayerTuning t = tune_layer(name, formats, probe, 3);
        for (const auto& x : t.trials)
          std::printf("tune layer=%s format=%s seconds=%.4f speedup=%.3f reached=%.4f min_unit=%.4f hf_diff=%.4f guard=%s %s\n",
                      name.c_str(), x.format.name().c_str(), x.seconds, x.speedup, x.reached, x.min_unit, x.hf_diff,
                      x.format == ComputeFormat{} ? "reference" : x.pass ? "pass" : "FAIL", x.why.c_str());
        std::printf("tune layer=%s chosen=%s speedup=%.3f\n", name.c_str(), t.chosen.name().c_str(), t.speedup);
        std::fflush(stdout);
      }
      return 0;
    }
    if (param_cost) {
      for (const auto& name : split(layers)) {
        ActMaxRequest req;
        req.layer = name;
        for (int64_t u = 0; u < std::min<int64_t>(units, m.layer(name).units); ++u) req.units.push_back(u);
        req.settings.lr_policy = LrPolicy::Adam;
        req.settings.lr = 0.05;
        req.robustness_shift = 0;
        req.crop_to_receptive_field = false;
        timed(m, req, 2, dev);  // warm-up
        if (crop_only) {  // the receptive-field crop alone, pixel against olah2017, `rounds` times
          const ActMaxSettings olah = actmax_preset("olah2017");
          ActMaxRequest crop = req;
          crop.crop_to_receptive_field = true;
          req.settings.param = ImageParam::Fft;
          req.settings.decorrelate = olah.decorrelate, req.settings.pad = olah.pad, req.settings.jitter = olah.jitter;
          req.settings.scale = olah.scale, req.settings.rotate = olah.rotate;
          req.crop_to_receptive_field = true;
          // Rendering the whole spectrum and differentiating it (spectral.h, the window's
          // rows), at this batch, on the CPU.
          const double render = dev.is_cpu() ? render_cost(m, name, static_cast<int64_t>(req.units.size())) : 0.0;
          for (int r = 0; r < rounds; ++r) {
            const double a = per_iteration(m, crop, iters, 3, dev), b = per_iteration(m, req, iters, 3, dev);
            std::printf("param_cost layer=%s units=%d size=%d pixel_crop_ms=%.2f transforms_crop_ms=%.2f crop_ratio=%.3f "
                        "render_ms=%.2f render_share=%.3f\n",
                        name.c_str(), static_cast<int>(req.units.size()), static_cast<int>(m.input_size()), 1e3 * a, 1e3 * b, b / a,
                        1e3 * render, render / a);
            std::fflush(stdout);
          }
          continue;
        }
        const double pixel = per_iteration(m, req, iters, 3, dev);
        req.settings.param = ImageParam::Fft;
        const double fft = per_iteration(m, req, iters, 3, dev);
        const ActMaxSettings olah = actmax_preset("olah2017");
        req.settings.decorrelate = olah.decorrelate, req.settings.pad = olah.pad, req.settings.jitter = olah.jitter;
        req.settings.scale = olah.scale, req.settings.rotate = olah.rotate;
        const double transforms = per_iteration(m, req, iters, 3, dev);
        ActMaxRequest crop = req;
        crop.settings = ActMaxSettings{};
        crop.settings.lr_policy = LrPolicy::Adam, crop.settings.lr = 0.05;
        crop.crop_to_receptive_field = true;
        const double cropped = per_iteration(m, crop, iters, 3, dev);
        req.crop_to_receptive_field = true;  // what a sweep runs: the crop under every transform
        const double transforms_cropped = per_iteration(m, req, iters, 3, dev);
        std::printf("param_cost layer=%s units=%d size=%d pixel_ms=%.2f fft_ms=%.2f transforms_ms=%.2f fft_ratio=%.3f "
                    "transforms_ratio=%.3f pixel_crop_ms=%.2f transforms_crop_ms=%.2f crop_ratio=%.3f\n",
                    name.c_str(), static_cast<int>(req.units.size()), static_cast<int>(m.input_size()), 1e3 * pixel, 1e3 * fft, 1e3 * transforms, fft / pixel, transforms / pixel,
                    1e3 * cropped, 1e3 * transforms_cropped, transforms_cropped / cropped);
        std::fflush(stdout);
      }
      return 0;
    }
    if (project > 0) {
      double total = 0;
      int64_t all_units = 0;
      for (const auto& L : m.layers()) {
        if (L.kind != LayerKind::Conv && L.kind != LayerKind::Linear) continue;
        const int64_t B = std::min<int64_t>(units, L.units);
        const ActMaxRequest req = peer_request(L.alias, B);
        timed(m, req, 1, dev);  // warm-up at this batch size
        const double t2 = timed(m, req, 2, dev), t4 = timed(m, req, 4, dev);
        const double per_iter = std::max(0.0, (t4 - t2) / 2), fixed = std::max(0.0, t2 - 2 * per_iter);
        const int64_t tasks = (L.units + B - 1) / B;
        const double layer_s = static_cast<double>(tasks) * (fixed + project * per_iter);
        total += layer_s;
        all_units += L.units;
        std::printf("project layer=%s units=%lld per_task=%lld tasks=%lld fixed_s=%.4f per_iter_s=%.5f layer_s=%.1f\n",
                    L.alias.c_str(), static_cast<long long>(L.units), static_cast<long long>(B), static_cast<long long>(tasks), fixed,
                    per_iter, layer_s);
        std::fflush(stdout);
      }
      std::printf("project total units=%lld iterations=%d device=%s seconds=%.1f minutes=%.2f\n", static_cast<long long>(all_units),
                  project, device.c_str(), total, total / 60);
      return 0;
    }
    // The window the loop computes for `L`: the centre unit's receptive field, or the image.
    auto loop_side = [&](const LayerInfo& L) {
      int64_t h = size, w = size;
      if (crop && L.spatial())
        if (auto win = m.input_window(L.index, L.shape[1] / 2, L.shape[2] / 2)) h = win->y1 - win->y0, w = win->x1 - win->x0;
      return std::pair<int64_t, int64_t>{h, w};
    };
    std::vector<ConvShape> executed;  // every convolution the measured loops run, for the peak
    for (const auto& name : split(layers)) {
      const auto more = loop_shapes(m, m.layer(name), loop_side(m.layer(name)).first, units);
      executed.insert(executed.end(), more.begin(), more.end());
    }
    for (const auto& name : split(layers)) {
      if (peak_only) break;
      const LayerInfo& L = m.layer(name);
      ActMaxRequest req = peer_request(name, units);
      req.settings.iterations = iters;
      req.crop_to_receptive_field = crop != 0;
      req.robustness_shift = 0;
      {  // warm-up: one unit, a few iterations
        ActMaxRequest w = req;
        w.units = {0};
        w.settings.iterations = 2;
        activation_maximization(m, w);
      }
      // The whole call (initial noise, the loop, final activation, robustness and metrics):
      // what a task costs, as the peer's loop is what its user's script costs.
      double dt = timed(m, req, iters, dev);
      // The loop alone: the difference of a run twice as long and one as long, --rounds
      // times; the median, and the fastest and slowest round as the spread.
      const auto [h, w] = loop_side(L);
      std::printf("vizsweep layer=%s units=%d iters=%d size=%d crop=%lldx%lld seconds=%.3f unit_iters_per_s=%.3f", name.c_str(),
                  units, iters, size, static_cast<long long>(h), static_cast<long long>(w), dt, units * iters / dt);
      if (rounds > 0) {
        const std::vector<double> rounds_s = per_iteration_rounds(m, req, iters, rounds, dev);
        const double work = loop_flops(m, L.index, h, w) * units;
        auto rate = [&](double per_iter) { return per_iter > 0 ? work / per_iter / 1e9 : -1; };  // <= 0: noise swamped it
        std::printf(" gflops=%.2f gflops_slowest=%.2f gflops_fastest=%.2f", rate(rounds_s[rounds_s.size() / 2]),
                    rate(rounds_s.back()), rate(rounds_s.front()));
      }
      std::printf(" rounds=%d\n", rounds);
      std::fflush(stdout);
      if (check) {
        ActMaxRequest c = req;
        c.robustness_shift = 0;
        ActMaxResult low = activation_maximization(m, c), full = activation_maximization(*ref, c);
        torch::NoGradGuard ng;
        UnitObjective obj(*ref, ref->layer(name), c.units, c.objective.unit_kind());
        double reached = (obj.evaluate(ref->forward(low.images, L.index)).sum() / full.final_activation.sum()).item<double>();
        double diff = (low.images - full.images).abs().max().item<double>();
        std::printf("check layer=%s precision=%s channels_last=%d image_max_diff=%.3g reached=%.4f\n", name.c_str(),
                    precision.c_str(), channels_last, diff, reached);
        std::fflush(stdout);
      }
    }
    if (peak) {
      std::printf("peak conv gflops=%.2f shapes=%zu\n", peak_conv_flops(dev, 5, prec, channels_last != 0, executed, peak_only) / 1e9,
                  executed.size());
      if (check)
        std::printf("peak conv fp32 nchw gflops=%.2f\n", peak_conv_flops(dev, 5, Model::Precision::Fp32, false, executed) / 1e9);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vizsweep-bench-actmax: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
