// Double-precision FFTs for lengths 2^a * 3^b * 5^c: a mixed-radix (8, 4, 2, 3, 5) Stockham
// complex FFT and a real FFT built on it (a complex FFT of n/2 points for even n).
// Twiddle factors are computed once, when a plan is made. No allocation after init.
#ifndef MELSPEC_FFT_H
#define MELSPEC_FFT_H

#include <stdint.h>

namespace melspec {

struct Complex {
  double re;
  double im;
};

// One point of two transforms computed side by side (lane i = transform i).
struct Complex2 {
  double re[2];
  double im[2];
};

// A twiddle factor w stored as (re, re, -im, im): with SIMD, a * w is then two multiplies and an add.
struct Twiddle {
  double re;
  double re_copy;
  double neg_im;
  double im;
};

constexpr int kMaxStages = 64;

// Forward complex DFT of length n: X[k] = sum_j x[j] exp(-2 pi i j k / n).
struct ComplexFft {
  int32_t n = 0;
  int32_t n_stages = 0;
  int32_t radix[kMaxStages] = {};
  int32_t twiddle_offset[kMaxStages] = {};
  Twiddle* twiddles = nullptr;  // per stage: m * (radix - 1) factors
  Complex* work = nullptr;      // n points of scratch
  Complex2* work2 = nullptr;    // n points of scratch for two transforms at once
};

// True when n >= 1 has no prime factor other than 2, 3 and 5.
bool is_smooth_235(int32_t n);

// Returns false when n is not 2^a 3^b 5^c or memory runs out (the plan is then empty).
bool complex_fft_init(ComplexFft* plan, int32_t n);
void complex_fft_free(ComplexFft* plan);
// In place: data holds n points on entry and the DFT on return.
void complex_fft_forward(const ComplexFft* plan, Complex* data);

// Forward real DFT of length n: the first n / 2 + 1 bins, like numpy.fft.rfft.
struct RealFft {
  int32_t n = 0;
  ComplexFft inner;                 // n / 2 points (even n) or n points (odd n)
  Twiddle* post_twiddles = nullptr;  // exp(-2 pi i k / n), k < n / 2 (even n only)
  Complex* scratch = nullptr;        // inner.n points
  Complex2* scratch2 = nullptr;      // inner.n points of two transforms
};

bool real_fft_init(RealFft* plan, int32_t n);
void real_fft_free(RealFft* plan);
// input: n doubles (left untouched unless it is real_fft_scratch); output: n / 2 + 1 bins.
void real_fft_forward(const RealFft* plan, const double* input, Complex* output);
// For even n: the plan's scratch as n doubles. Input written there is transformed without a copy (and
// overwritten). nullptr for odd n.
double* real_fft_scratch(const RealFft* plan);

// Two real FFTs at once (even n only): write the two inputs into real_fft_scratch2 as point k =
// (x[2k] + i x[2k+1]) in lane 0 and lane 1, then real_fft_forward2 puts the n / 2 + 1 bins of both
// into output. Same results, bit for bit, as two calls of real_fft_forward. nullptr for odd n.
Complex2* real_fft_scratch2(const RealFft* plan);
void real_fft_forward2(const RealFft* plan, Complex2* output);

}  // namespace melspec

#endif  // MELSPEC_FFT_H
