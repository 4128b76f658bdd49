// The spectral render's own transform (kernels/spectral.h) against a direct DFT in double and
// against LibTorch's irfft2 render, values and gradients; and its promise that rendering some
// rows gives those rows, and their gradient, bit for bit as rendering the whole image does.
#include <gtest/gtest.h>

#include <torch/fft.h>
#include <torch/torch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "kernels/actmax.h"
#include "kernels/spectral.h"

using namespace vizsweep::kernels;

namespace {

ParallelFor serial() {
  return [](int64_t n, const std::function<void(int64_t, int64_t)>& fn) { fn(0, n); };
}

// Lucid's render with LibTorch's FFT: sigmoid(colour x irfft2(spec x scale, orthonormal) + offset).
torch::Tensor reference_render(const torch::Tensor& spec, const torch::Tensor& scale, const torch::Tensor& colour,
                               double offset) {
  const int64_t S = spec.size(2);
  auto img = torch::fft::irfft2(torch::view_as_complex(spec * scale.unsqueeze(-1)), c10::IntArrayRef{S, S}, {-2, -1}, "ortho");
  if (colour.defined()) img = torch::einsum("ij,bjyx->biyx", {colour, img});
  return torch::sigmoid(img + offset);
}

std::vector<float> values(const torch::Tensor& t) {
  auto c = t.contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

TEST(Spectral, ColumnTransformIsTheDft) {
  // Against the definition in double, both directions, lengths with every radix; the error
  // bound is a few float roundings per pass (log n passes) relative to the column's norm.
  for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 28, 30, 32, 96, 143, 224}) {
    ASSERT_TRUE(ColumnDft::supported(n)) << n;
    ColumnDft dft(n);
    const int64_t L = 19;
    torch::manual_seed(n);
    auto x = torch::randn({2, n, L}, torch::kDouble);
    for (int sign : {1, -1}) {
      auto re = x[0].to(torch::kFloat).contiguous(), im = x[1].to(torch::kFloat).contiguous();
      auto wre = torch::empty_like(re), wim = torch::empty_like(im);
      dft.run(re.data_ptr<float>(), im.data_ptr<float>(), wre.data_ptr<float>(), wim.data_ptr<float>(), L, 0, L, sign);
      auto j = torch::arange(n, torch::kDouble);
      auto angle = sign * 2 * M_PI * torch::outer(j, j) / n;
      auto want_re = torch::mm(angle.cos(), x[0]) - torch::mm(angle.sin(), x[1]);
      auto want_im = torch::mm(angle.sin(), x[0]) + torch::mm(angle.cos(), x[1]);
      const double norm = std::sqrt(static_cast<double>(n)) * 4.0;
      EXPECT_LT((re.to(torch::kDouble) - want_re).abs().max().item<double>(), 1e-6 * norm) << n << " sign " << sign;
      EXPECT_LT((im.to(torch::kDouble) - want_im).abs().max().item<double>(), 1e-6 * norm) << n << " sign " << sign;
    }
  }
  EXPECT_FALSE(ColumnDft::supported(227));  // prime
  EXPECT_FALSE(ColumnDft::supported(299));  // 13 x 23
  EXPECT_FALSE(SpectralRender::supported(227));
}

TEST(Spectral, AColumnsResultDoesNotDependOnItsNeighbours) {
  // The same column transformed in a range of 3 or of all 37 columns, starting at an odd
  // offset or not: the same bits (the vector lanes and the scalar tail do the same operations).
  ColumnDft dft(224);
  const int64_t L = 37;
  torch::manual_seed(1);
  auto re0 = torch::randn({224, L}), im0 = torch::randn({224, L});
  auto run = [&](int64_t l0, int64_t l1) {
    auto re = re0.clone(), im = im0.clone(), w1 = torch::empty_like(re0), w2 = torch::empty_like(re0);
    dft.run(re.data_ptr<float>(), im.data_ptr<float>(), w1.data_ptr<float>(), w2.data_ptr<float>(), L, l0, l1, 1);
    return std::make_pair(re, im);
  };
  auto all = run(0, L), some = run(5, 8);
  EXPECT_TRUE(torch::equal(all.first.slice(1, 5, 8), some.first.slice(1, 5, 8)));
  EXPECT_TRUE(torch::equal(all.second.slice(1, 5, 8), some.second.slice(1, 5, 8)));
  EXPECT_TRUE(torch::equal(some.first.slice(1, 0, 5), re0.slice(1, 0, 5)));  // columns outside the range untouched
}

TEST(Spectral, RenderMatchesLibTorchsFftValuesAndGradients) {
  // The whole image and the gradient of a weighted sum of it, against LibTorch's irfft2
  // render through autograd, for even and odd sides, with and without the colour mix and
  // an offset. Two float computations of the same sums: measured here at most 1.2e-7 on
  // pixels in (0, 1) and 3.4e-7 of the largest gradient entry. The bounds, 2e-6 and 1e-5,
  // leave room for the other CPU kind's LibTorch kernels (its sigmoid and FFT differ from
  // these by an ulp or so), far below any error in the transform (a wrong twiddle or weight
  // moves values by 1e-2 and more).
  for (int64_t S : {32, 28, 21, 30, 224}) {
    for (bool mix : {false, true}) {
      const int64_t B = 2, C = 3, K = S / 2 + 1;
      const double offset = mix ? -0.7 : 0.0;
      torch::manual_seed(S);
      auto spec = torch::randn({B, C, S, K, 2}) * 0.3;
      auto scale = torch::rand({S, K}) + 0.05;
      torch::Tensor colour = mix ? colour_decorrelation() : torch::Tensor();
      // The render's scale carries the orthonormal 1 / S.
      SpectralRender render(S, values(scale / static_cast<double>(S)), mix ? values(colour) : std::vector<float>{},
                            static_cast<float>(offset));
      auto weight = torch::randn({B, C, S, S});

      auto a = spec.clone().requires_grad_(true);
      auto want = reference_render(a, scale, colour, offset);
      auto want_grad = torch::autograd::grad({(want * weight).sum()}, {a})[0];
      auto b = spectrum_planar(spec).requires_grad_(true);
      auto got = spectral_render(render, b, 0, S, 0.5);
      auto got_grad = spectrum_interleaved(torch::autograd::grad({(got * weight).sum()}, {b})[0]);
      EXPECT_LT((got - want).abs().max().item<double>(), 2e-6) << "S " << S << " mix " << mix;
      const double g = want_grad.abs().max().item<double>();
      EXPECT_LT((got_grad - want_grad).abs().max().item<double>(), 1e-5 * g) << "S " << S << " mix " << mix;
    }
  }
}

TEST(Spectral, SomeRowsRenderAndDifferentiateAsTheWholeImageDoes) {
  // Rows [r0, r1) (rounded out to pairs) are the whole render's rows bit for bit, the other
  // rows are the fill; and a loss on rows inside that range has the same spectrum gradient,
  // bit for bit, whether the whole image or only those rows were rendered: what keeps a
  // receptive-field crop exact. The same for the band of rendered rows alone.
  for (int64_t S : {224, 21}) {
    const int64_t B = 3, C = 3, K = S / 2 + 1;
    torch::manual_seed(7);
    auto spec = torch::randn({B, C, S, K, 2}) * 0.2;
    auto scale = torch::rand({S, K});
    SpectralRender render(S, values(scale), values(colour_decorrelation()), 0.0f);
    for (auto [r0, r1] : {std::pair<int64_t, int64_t>{5, 12}, {0, 3}, {S - 3, S}, {S / 2, S / 2 + 1}}) {
      const auto [a, b] = render.rendered_rows(r0, r1);
      EXPECT_LE(a, r0);
      EXPECT_GE(b, r1);
      EXPECT_LE(b - a, r1 - r0 + 2);
      auto whole_in = spectrum_planar(spec).requires_grad_(true), part_in = spectrum_planar(spec).requires_grad_(true);
      auto whole = spectral_render(render, whole_in, 0, S, 0.25);
      auto part = spectral_render(render, part_in, r0, r1, 0.25);
      EXPECT_TRUE(torch::equal(whole.slice(2, a, b), part.slice(2, a, b))) << S << " rows " << r0 << ".." << r1;
      EXPECT_TRUE((part.slice(2, 0, a) == 0.25).all().item<bool>());
      EXPECT_TRUE((part.slice(2, b, S) == 0.25).all().item<bool>());
      auto weight = torch::zeros({B, C, S, S});
      weight.slice(2, r0, r1).normal_();
      auto gw = torch::autograd::grad({(whole * weight).sum()}, {whole_in})[0];
      auto gp = torch::autograd::grad({(part * weight).sum()}, {part_in})[0];
      EXPECT_TRUE(torch::equal(gw, gp)) << S << " rows " << r0 << ".." << r1;
      EXPECT_GT(gw.abs().max().item<double>(), 0.0);
      // The band alone (what the transforms' resampling reads): the same rows and gradient.
      auto band_in = spectrum_planar(spec).requires_grad_(true);
      auto band = spectral_render_band(render, band_in, r0, r1);
      EXPECT_TRUE(torch::equal(band, whole.slice(2, a, b))) << S << " rows " << r0 << ".." << r1;
      auto gb = torch::autograd::grad({(band * weight.slice(2, a, b)).sum()}, {band_in})[0];
      EXPECT_TRUE(torch::equal(gw, gb)) << S << " rows " << r0 << ".." << r1;
    }
  }
}

TEST(Spectral, LayoutRoundTrips) {
  auto spec = torch::randn({2, 3, 8, 5, 2});
  auto planar = spectrum_planar(spec);
  EXPECT_EQ(planar.sizes(), (std::vector<int64_t>{2, 8, 5, 2, 3}));
  EXPECT_EQ(planar[1][4][3][1][2].item<float>(), spec[1][2][4][3][1].item<float>());
  EXPECT_TRUE(torch::equal(spectrum_interleaved(planar), spec));
}

TEST(Spectral, ThreadsDoNotChangeTheBits) {
  // The render and its gradient with the work split over threads (ATen's pool) and serially.
  const int64_t S = 96, B = 8, C = 3, K = S / 2 + 1;  // large enough to run on threads
  torch::manual_seed(3);
  auto spec = torch::randn({2, S, K, B, C});
  auto scale = torch::rand({S, K});
  SpectralRender render(S, values(scale), {}, 0.0f);
  auto out1 = torch::empty({B, C, S, S});
  render.forward(spec.data_ptr<float>(), B, C, 10, 50, 0.5f, out1.data_ptr<float>(), serial());
  const int threads = torch::get_num_threads();
  torch::set_num_threads(2);
  auto out = spectral_render(render, spec, 10, 50, 0.5);
  torch::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(out, out1));
  auto g = torch::randn({B, C, S, S});
  auto grad1 = torch::empty({2, S, K, B, C}), grad2 = torch::empty({2, S, K, B, C});
  render.backward(g.data_ptr<float>(), out1.data_ptr<float>(), B, C, 10, 50, grad1.data_ptr<float>(), serial());
  torch::set_num_threads(2);
  render.backward(g.data_ptr<float>(), out1.data_ptr<float>(), B, C, 10, 50, grad2.data_ptr<float>(), intra_op_parallel());
  torch::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(grad1, grad2));
}
