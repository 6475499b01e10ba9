// Mixed-radix Stockham FFT (decimation in frequency, self-sorting) and a real FFT on top.
//
// Stage s of a length-N transform splits the current sub-length L = p * m (p = radix):
//   b_k = sum_r a_r w_p^(r k),  a_r = x[q + S (j + r m)],   y[q + S (p j + k)] = b_k w_L^(j k)
// for j < m, q < S (S = product of earlier radices). After the last stage y is in natural order.
#include "fft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#endif

namespace melspec {
namespace {

constexpr double kPi = 3.14159265358979323846264338327950288;

// Complex arithmetic on one point. With wasm SIMD (-msimd128) a point is one f64x2 vector; the
// roundings are the same as in the scalar code (each product and sum rounded once, in double).
#if defined(__wasm_simd128__)
using CV = v128_t;
inline CV load(const Complex* p) { return wasm_v128_load(p); }
inline void store(Complex* p, CV v) { wasm_v128_store(p, v); }
inline CV add(CV a, CV b) { return wasm_f64x2_add(a, b); }
inline CV sub(CV a, CV b) { return wasm_f64x2_sub(a, b); }
inline CV scale(CV a, double s) { return wasm_f64x2_mul(a, wasm_f64x2_splat(s)); }
// -i * a = (a.im, -a.re)
inline CV mul_neg_i(CV a) {
  return wasm_v128_xor(wasm_i64x2_shuffle(a, a, 1, 0), wasm_i64x2_make(0, INT64_MIN));
}
inline CV conj(CV a) { return wasm_v128_xor(a, wasm_i64x2_make(0, INT64_MIN)); }
struct TV {
  v128_t re_re;
  v128_t neg_im_im;
};
inline TV load_tw(const Twiddle* t) { return {wasm_v128_load(&t->re), wasm_v128_load(&t->neg_im)}; }
// a * w = (a.re w.re + a.im (-w.im), a.im w.re + a.re w.im): the same roundings as the scalar product
inline CV mul(CV a, TV w) {
  return wasm_f64x2_add(wasm_f64x2_mul(a, w.re_re), wasm_f64x2_mul(wasm_i64x2_shuffle(a, a, 1, 0), w.neg_im_im));
}
#else
using CV = Complex;
inline CV load(const Complex* p) { return *p; }
inline void store(Complex* p, CV v) { *p = v; }
inline CV add(CV a, CV b) { return {a.re + b.re, a.im + b.im}; }
inline CV sub(CV a, CV b) { return {a.re - b.re, a.im - b.im}; }
inline CV scale(CV a, double s) { return {a.re * s, a.im * s}; }
inline CV mul_neg_i(CV a) { return {a.im, -a.re}; }
inline CV conj(CV a) { return {a.re, -a.im}; }
using TV = Complex;
inline TV load_tw(const Twiddle* t) { return {t->re, t->im}; }
inline CV mul(CV a, TV b) { return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re}; }
#endif

// Two transforms at once: lane i of every vector belongs to transform i, so complex arithmetic needs
// no shuffles. The roundings are those of the one-point code above, lane by lane.
#if defined(__wasm_simd128__)
struct CV2 {
  v128_t re;
  v128_t im;
};
inline CV2 load(const Complex2* p) { return {wasm_v128_load(p->re), wasm_v128_load(p->im)}; }
inline void store(Complex2* p, CV2 v) {
  wasm_v128_store(p->re, v.re);
  wasm_v128_store(p->im, v.im);
}
inline CV2 add(CV2 a, CV2 b) { return {wasm_f64x2_add(a.re, b.re), wasm_f64x2_add(a.im, b.im)}; }
inline CV2 sub(CV2 a, CV2 b) { return {wasm_f64x2_sub(a.re, b.re), wasm_f64x2_sub(a.im, b.im)}; }
inline CV2 scale(CV2 a, double s) {
  const v128_t f = wasm_f64x2_splat(s);
  return {wasm_f64x2_mul(a.re, f), wasm_f64x2_mul(a.im, f)};
}
inline CV2 mul_neg_i(CV2 a) { return {a.im, wasm_f64x2_neg(a.re)}; }
inline CV2 conj(CV2 a) { return {a.re, wasm_f64x2_neg(a.im)}; }
struct TV2 {
  v128_t re;
  v128_t im;
};
inline TV2 load_twiddle(const Complex2*, const Twiddle* t) { return {wasm_v128_load(&t->re), wasm_f64x2_splat(t->im)}; }
inline CV2 mul(CV2 a, TV2 w) {
  return {wasm_f64x2_sub(wasm_f64x2_mul(a.re, w.re), wasm_f64x2_mul(a.im, w.im)),
          wasm_f64x2_add(wasm_f64x2_mul(a.re, w.im), wasm_f64x2_mul(a.im, w.re))};
}
#else
struct CV2 {
  Complex lane[2];
};
inline CV2 load(const Complex2* p) { return {{{p->re[0], p->im[0]}, {p->re[1], p->im[1]}}}; }
inline void store(Complex2* p, CV2 v) {
  for (int i = 0; i < 2; ++i) {
    p->re[i] = v.lane[i].re;
    p->im[i] = v.lane[i].im;
  }
}
inline CV2 add(CV2 a, CV2 b) { return {{add(a.lane[0], b.lane[0]), add(a.lane[1], b.lane[1])}}; }
inline CV2 sub(CV2 a, CV2 b) { return {{sub(a.lane[0], b.lane[0]), sub(a.lane[1], b.lane[1])}}; }
inline CV2 scale(CV2 a, double s) { return {{scale(a.lane[0], s), scale(a.lane[1], s)}}; }
inline CV2 mul_neg_i(CV2 a) { return {{mul_neg_i(a.lane[0]), mul_neg_i(a.lane[1])}}; }
inline CV2 conj(CV2 a) { return {{conj(a.lane[0]), conj(a.lane[1])}}; }
inline TV load_twiddle(const Complex2*, const Twiddle* t) { return load_tw(t); }
inline CV2 mul(CV2 a, TV w) { return {{mul(a.lane[0], w), mul(a.lane[1], w)}}; }
#endif
inline TV load_twiddle(const Complex*, const Twiddle* t) { return load_tw(t); }

// exp(-2 pi i index / n), with the index reduced first so that the angle stays small.
Twiddle twiddle(int64_t index, int64_t n) {
  index %= n;
  const double angle = -2.0 * kPi * static_cast<double>(index) / static_cast<double>(n);
  const double re = cos(angle);
  const double im = sin(angle);
  return {re, re, -im, im};
}

template <typename P>
void stage_radix2(const P* x, P* y, const Twiddle* tw, int32_t m, int32_t s) {
  for (int32_t j = 0; j < m; ++j) {
    const auto w1 = load_twiddle(x, tw + j);
    for (int32_t q = 0; q < s; ++q) {
      const auto a0 = load(x + q + s * j);
      const auto a1 = load(x + q + s * (j + m));
      store(y + q + s * (2 * j), add(a0, a1));
      store(y + q + s * (2 * j + 1), j == 0 ? sub(a0, a1) : mul(sub(a0, a1), w1));
    }
  }
}

template <typename P>
void stage_radix3(const P* x, P* y, const Twiddle* tw, int32_t m, int32_t s) {
  const double sin60 = 0.86602540378443864676372317075293618;
  for (int32_t j = 0; j < m; ++j) {
    const auto w1 = load_twiddle(x, tw + 2 * j);
    const auto w2 = load_twiddle(x, tw + 2 * j + 1);
    for (int32_t q = 0; q < s; ++q) {
      const auto a0 = load(x + q + s * j);
      const auto a1 = load(x + q + s * (j + m));
      const auto a2 = load(x + q + s * (j + 2 * m));
      const auto t1 = add(a1, a2);
      const auto t2 = scale(sub(a1, a2), sin60);
      const auto mid = sub(a0, scale(t1, 0.5));
      const auto b1 = add(mid, mul_neg_i(t2));
      const auto b2 = sub(mid, mul_neg_i(t2));
      store(y + q + s * (3 * j), add(a0, t1));
      store(y + q + s * (3 * j + 1), j == 0 ? b1 : mul(b1, w1));
      store(y + q + s * (3 * j + 2), j == 0 ? b2 : mul(b2, w2));
    }
  }
}

template <typename P>
void stage_radix4(const P* x, P* y, const Twiddle* tw, int32_t m, int32_t s) {
  for (int32_t j = 0; j < m; ++j) {
    const auto w1 = load_twiddle(x, tw + 3 * j);
    const auto w2 = load_twiddle(x, tw + 3 * j + 1);
    const auto w3 = load_twiddle(x, tw + 3 * j + 2);
    for (int32_t q = 0; q < s; ++q) {
      const auto a0 = load(x + q + s * j);
      const auto a1 = load(x + q + s * (j + m));
      const auto a2 = load(x + q + s * (j + 2 * m));
      const auto a3 = load(x + q + s * (j + 3 * m));
      const auto t0 = add(a0, a2);
      const auto t1 = sub(a0, a2);
      const auto t2 = add(a1, a3);
      const auto t3 = mul_neg_i(sub(a1, a3));
      P* out = y + q + s * (4 * j);
      store(out, add(t0, t2));
      if (j == 0) {
        store(out + s, add(t1, t3));
        store(out + 2 * s, sub(t0, t2));
        store(out + 3 * s, sub(t1, t3));
      } else {
        store(out + s, mul(add(t1, t3), w1));
        store(out + 2 * s, mul(sub(t0, t2), w2));
        store(out + 3 * s, mul(sub(t1, t3), w3));
      }
    }
  }
}

// 8-point DFT as two 4-point DFTs (even and odd inputs) joined with w8^k, w8 = (1 - i) / sqrt(2).
template <typename P>
void stage_radix8(const P* x, P* y, const Twiddle* tw, int32_t m, int32_t s) {
  const double r = 0.70710678118654752440084436210484904;  // 1 / sqrt(2)
  const int64_t sm = static_cast<int64_t>(s) * m;
  for (int32_t j = 0; j < m; ++j) {
    const Twiddle* w = tw + 7 * j;
    for (int32_t q = 0; q < s; ++q) {
      const P* in = x + q + s * j;
      decltype(load(in)) e[4];
      decltype(load(in)) o[4];
      {
        const auto p0 = load(in), p1 = load(in + 2 * sm), p2 = load(in + 4 * sm), p3 = load(in + 6 * sm);
        const auto t0 = add(p0, p2), t1 = sub(p0, p2), t2 = add(p1, p3), t3 = mul_neg_i(sub(p1, p3));
        e[0] = add(t0, t2);
        e[1] = add(t1, t3);
        e[2] = sub(t0, t2);
        e[3] = sub(t1, t3);
      }
      {
        const auto p0 = load(in + sm), p1 = load(in + 3 * sm), p2 = load(in + 5 * sm), p3 = load(in + 7 * sm);
        const auto t0 = add(p0, p2), t1 = sub(p0, p2), t2 = add(p1, p3), t3 = mul_neg_i(sub(p1, p3));
        const auto u1 = add(t1, t3);
        const auto u3 = sub(t1, t3);
        o[0] = add(t0, t2);
        o[1] = scale(add(u1, mul_neg_i(u1)), r);  // * (1 - i) / sqrt(2)
        o[2] = mul_neg_i(sub(t0, t2));            // * -i
        o[3] = scale(sub(mul_neg_i(u3), u3), r);  // * (-1 - i) / sqrt(2)
      }
      P* out = y + q + s * (8 * j);
      store(out, add(e[0], o[0]));
      if (j == 0) {
        for (int k = 1; k < 4; ++k) store(out + k * s, add(e[k], o[k]));
        for (int k = 0; k < 4; ++k) store(out + (k + 4) * s, sub(e[k], o[k]));
      } else {
        for (int k = 1; k < 4; ++k) store(out + k * s, mul(add(e[k], o[k]), load_twiddle(x, w + k - 1)));
        for (int k = 0; k < 4; ++k) store(out + (k + 4) * s, mul(sub(e[k], o[k]), load_twiddle(x, w + k + 3)));
      }
    }
  }
}

template <typename P>
void stage_radix5(const P* x, P* y, const Twiddle* tw, int32_t m, int32_t s) {
  const double c1 = 0.30901699437494742410229341718281906;   // cos(2 pi / 5)
  const double c2 = -0.80901699437494742410229341718281906;  // cos(4 pi / 5)
  const double s1 = 0.95105651629515357211643933337938214;   // sin(2 pi / 5)
  const double s2 = 0.58778525229247312916870595463907277;   // sin(4 pi / 5)
  for (int32_t j = 0; j < m; ++j) {
    const Twiddle* w = tw + 4 * j;
    for (int32_t q = 0; q < s; ++q) {
      const auto a0 = load(x + q + s * j);
      const auto a1 = load(x + q + s * (j + m));
      const auto a2 = load(x + q + s * (j + 2 * m));
      const auto a3 = load(x + q + s * (j + 3 * m));
      const auto a4 = load(x + q + s * (j + 4 * m));
      const auto t1 = add(a1, a4);
      const auto t2 = add(a2, a3);
      const auto t3 = sub(a1, a4);
      const auto t4 = sub(a2, a3);
      const auto m1 = add(a0, add(scale(t1, c1), scale(t2, c2)));
      const auto m2 = add(a0, add(scale(t1, c2), scale(t2, c1)));
      const auto n1 = mul_neg_i(add(scale(t3, s1), scale(t4, s2)));
      const auto n2 = mul_neg_i(sub(scale(t3, s2), scale(t4, s1)));
      P* out = y + q + s * (5 * j);
      store(out, add(a0, add(t1, t2)));
      if (j == 0) {
        store(out + s, add(m1, n1));
        store(out + 2 * s, add(m2, n2));
        store(out + 3 * s, sub(m2, n2));
        store(out + 4 * s, sub(m1, n1));
      } else {
        store(out + s, mul(add(m1, n1), load_twiddle(x, w)));
        store(out + 2 * s, mul(add(m2, n2), load_twiddle(x, w + 1)));
        store(out + 3 * s, mul(sub(m2, n2), load_twiddle(x, w + 2)));
        store(out + 4 * s, mul(sub(m1, n1), load_twiddle(x, w + 3)));
      }
    }
  }
}

// All stages of plan on data (n points), with work as scratch; the result ends in data.
template <typename P>
void run_stages(const ComplexFft* plan, P* data, P* work) {
  P* x = data;
  P* y = work;
  int32_t length = plan->n;
  int32_t stride = 1;
  for (int32_t st = 0; st < plan->n_stages; ++st) {
    const int32_t p = plan->radix[st];
    const int32_t m = length / p;
    const Twiddle* tw = plan->twiddles + plan->twiddle_offset[st];
    switch (p) {
      case 2: stage_radix2(x, y, tw, m, stride); break;
      case 3: stage_radix3(x, y, tw, m, stride); break;
      case 4: stage_radix4(x, y, tw, m, stride); break;
      case 8: stage_radix8(x, y, tw, m, stride); break;
      default: stage_radix5(x, y, tw, m, stride); break;
    }
    P* t = x;
    x = y;
    y = t;
    length = m;
    stride *= p;
  }
  if (x != data) memcpy(data, x, sizeof(P) * plan->n);
}

// Real-FFT split for even n (h = n / 2 inner points z): X[k] = E + W^k O with E = (Z[k] + conj(Z[h-k])) / 2,
// O = (Z[k] - conj(Z[h-k])) / (2 i), W = exp(-2 pi i / n); bin h - k reuses them: X[h-k] = conj(E - W^k O),
// and k = h / 2 pairs with itself. Bins 0 and h are set by the caller.
template <typename P>
void split_real(const RealFft* plan, const P* z, P* output) {
  const int32_t h = plan->n / 2;
  for (int32_t k = 1; 2 * k <= h; ++k) {
    const auto a = load(z + k);
    const auto b = conj(load(z + h - k));
    const auto even_part = scale(add(a, b), 0.5);
    const auto odd_part = mul_neg_i(scale(sub(a, b), 0.5));
    const auto turned = mul(odd_part, load_twiddle(z, plan->post_twiddles + k));
    store(output + k, add(even_part, turned));
    if (2 * k < h) store(output + h - k, conj(sub(even_part, turned)));
  }
}

}  // namespace

bool is_smooth_235(int32_t n) {
  if (n < 1) return false;
  const int32_t primes[3] = {2, 3, 5};
  for (int32_t i = 0; i < 3; ++i) {
    while (n % primes[i] == 0) n /= primes[i];
  }
  return n == 1;
}

bool complex_fft_init(ComplexFft* plan, int32_t n) {
  *plan = ComplexFft{};
  if (!is_smooth_235(n)) return false;
  // Radix order: 8s first, then 4, 2, 3, 5.
  int32_t rest = n;
  int32_t n_stages = 0;
  while (rest % 8 == 0) { plan->radix[n_stages++] = 8; rest /= 8; }
  while (rest % 4 == 0) { plan->radix[n_stages++] = 4; rest /= 4; }
  while (rest % 2 == 0) { plan->radix[n_stages++] = 2; rest /= 2; }
  while (rest % 3 == 0) { plan->radix[n_stages++] = 3; rest /= 3; }
  while (rest % 5 == 0) { plan->radix[n_stages++] = 5; rest /= 5; }
  plan->n = n;
  plan->n_stages = n_stages;

  int64_t n_twiddles = 0;
  int32_t length = n;
  for (int32_t st = 0; st < n_stages; ++st) {
    const int32_t p = plan->radix[st];
    const int32_t m = length / p;
    plan->twiddle_offset[st] = static_cast<int32_t>(n_twiddles);
    n_twiddles += static_cast<int64_t>(m) * (p - 1);
    length = m;
  }
  plan->twiddles = static_cast<Twiddle*>(malloc(sizeof(Twiddle) * (n_twiddles > 0 ? n_twiddles : 1)));
  plan->work = static_cast<Complex*>(malloc(sizeof(Complex) * n));
  plan->work2 = static_cast<Complex2*>(malloc(sizeof(Complex2) * n));
  if (plan->twiddles == nullptr || plan->work == nullptr || plan->work2 == nullptr) {
    complex_fft_free(plan);
    return false;
  }
  length = n;
  for (int32_t st = 0; st < n_stages; ++st) {
    const int32_t p = plan->radix[st];
    const int32_t m = length / p;
    Twiddle* tw = plan->twiddles + plan->twiddle_offset[st];
    for (int32_t j = 0; j < m; ++j) {
      for (int32_t k = 1; k < p; ++k) tw[j * (p - 1) + (k - 1)] = twiddle(static_cast<int64_t>(j) * k, length);
    }
    length = m;
  }
  return true;
}

void complex_fft_free(ComplexFft* plan) {
  free(plan->twiddles);
  free(plan->work);
  free(plan->work2);
  *plan = ComplexFft{};
}

void complex_fft_forward(const ComplexFft* plan, Complex* data) { run_stages(plan, data, plan->work); }

bool real_fft_init(RealFft* plan, int32_t n) {
  *plan = RealFft{};
  if (!is_smooth_235(n)) return false;
  plan->n = n;
  const bool even = n % 2 == 0;
  const int32_t inner_n = even ? n / 2 : n;
  if (!complex_fft_init(&plan->inner, inner_n)) return false;
  plan->scratch = static_cast<Complex*>(malloc(sizeof(Complex) * inner_n));
  plan->scratch2 = static_cast<Complex2*>(malloc(sizeof(Complex2) * inner_n));
  if (plan->scratch == nullptr || plan->scratch2 == nullptr) {
    real_fft_free(plan);
    return false;
  }
  if (even) {
    plan->post_twiddles = static_cast<Twiddle*>(malloc(sizeof(Twiddle) * inner_n));
    if (plan->post_twiddles == nullptr) {
      real_fft_free(plan);
      return false;
    }
    for (int32_t k = 0; k < inner_n; ++k) plan->post_twiddles[k] = twiddle(k, n);
  }
  return true;
}

void real_fft_free(RealFft* plan) {
  complex_fft_free(&plan->inner);
  free(plan->post_twiddles);
  free(plan->scratch);
  free(plan->scratch2);
  *plan = RealFft{};
}

double* real_fft_scratch(const RealFft* plan) { return plan->n % 2 == 0 ? &plan->scratch[0].re : nullptr; }

void real_fft_forward(const RealFft* plan, const double* input, Complex* output) {
  const int32_t n = plan->n;
  Complex* z = plan->scratch;
  if (n % 2 != 0) {
    for (int32_t j = 0; j < n; ++j) z[j] = {input[j], 0.0};
    complex_fft_forward(&plan->inner, z);
    for (int32_t k = 0; k <= n / 2; ++k) output[k] = z[k];
    return;
  }
  // Pack even/odd samples as one complex sequence of n / 2 points, transform, then split.
  const int32_t h = n / 2;
  if (input != real_fft_scratch(plan)) memcpy(z, input, sizeof(double) * n);
  complex_fft_forward(&plan->inner, z);
  output[0] = {z[0].re + z[0].im, 0.0};
  output[h] = {z[0].re - z[0].im, 0.0};
  split_real(plan, z, output);
}

Complex2* real_fft_scratch2(const RealFft* plan) { return plan->n % 2 == 0 ? plan->scratch2 : nullptr; }

void real_fft_forward2(const RealFft* plan, Complex2* output) {
  const int32_t h = plan->n / 2;
  Complex2* z = plan->scratch2;
  run_stages(&plan->inner, z, plan->inner.work2);
  for (int i = 0; i < 2; ++i) {
    output[0].re[i] = z[0].re[i] + z[0].im[i];
    output[0].im[i] = 0.0;
    output[h].re[i] = z[0].re[i] - z[0].im[i];
    output[h].im[i] = 0.0;
  }
  split_real(plan, z, output);
}

}  // namespace melspec
