// Log-mel spectrogram plan: window, padding, real FFT, numpy-exact |z|, sparse mel filterbank, dB.
// See melspec.h for the rounding chain and cpp_melspec/README.md for the reasoning.
#include "melspec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fft.h"

#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#endif

namespace melspec {

struct MelSpec {
  MelSpecConfig config{};
  RealFft fft{};
  int32_t n_bins = 0;
  double* window = nullptr;    // n_fft, periodic Hann of win_length centred in n_fft
  double* frame = nullptr;     // n_fft (windowed frame): the FFT's own scratch for even n_fft
  bool frame_owned = false;
  Complex* bins = nullptr;     // kBatch x n_bins: the spectra of a batch of frames
  double* power = nullptr;     // n_bins x kBatch: float32 power values of a batch, bin-major
  const float** frame_starts = nullptr;  // n_frames pointers to the first sample of each frame
  int64_t frame_starts_capacity = 0;
  double* fft_check = nullptr; // n_fft + 2
  int32_t* band_first = nullptr;   // per mel band: first non-zero bin
  int32_t* band_count = nullptr;   // per mel band: number of bins from band_first
  int32_t* band_offset = nullptr;  // per mel band: offset into weights
  float* weights = nullptr;
  int32_t used_bins = 0;           // bins 0 .. used_bins - 1 hold every non-zero weight; power is computed for those
  double ref_db = 0.0;
  float* input = nullptr;
  int64_t input_capacity = 0;
  float* output = nullptr;
  int64_t output_capacity = 0;
  float* padded = nullptr;
  int64_t padded_capacity = 0;
};

namespace {

constexpr double kPi = 3.14159265358979323846264338327950288;
constexpr double kInvLn10 = 0.43429448190325182765112891891660508;  // 1 / ln(10)
constexpr int32_t kMaxFft = 1 << 20;
constexpr int32_t kMaxMels = 4096;
constexpr int32_t kBatch = 8;  // frames whose power and mel sums run side by side (independent chains)

void set_error(char* error, size_t size, const char* format, double a = 0.0, double b = 0.0) {
  if (error != nullptr && size > 0) snprintf(error, size, format, a, b);
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// numpy.linspace(start, stop, num)[i] for num >= 2: i * step + start, the last element exactly stop.
void linspace(double start, double stop, int32_t num, double* out) {
  const double step = (stop - start) / static_cast<double>(num - 1);
  for (int32_t i = 0; i < num; ++i) out[i] = static_cast<double>(i) * step + start;
  out[num - 1] = stop;
}

// librosa.hz_to_mel / mel_to_hz (Slaney: linear below 1 kHz, logarithmic above; or HTK).
double hz_to_mel(double hz, bool htk) {
  if (htk) return 2595.0 * log10(1.0 + hz / 700.0);
  const double f_sp = 200.0 / 3;
  const double min_log_mel = 1000.0 / f_sp;
  const double logstep = log(6.4) / 27.0;
  if (hz >= 1000.0) return min_log_mel + log(hz / 1000.0) / logstep;
  return hz / f_sp;
}

double mel_to_hz(double mel, bool htk) {
  if (htk) return 700.0 * (pow(10.0, mel / 2595.0) - 1.0);
  const double f_sp = 200.0 / 3;
  const double min_log_mel = 1000.0 / f_sp;
  const double logstep = log(6.4) / 27.0;
  if (mel >= min_log_mel) return 1000.0 * exp(logstep * (mel - min_log_mel));
  return 0.0 + f_sp * mel;
}

// scipy.signal.get_window('hann', win_length, fftbins=True), zero-padded to n_fft like librosa.util.pad_center.
bool build_window(MelSpec* p) {
  const int32_t n_fft = p->config.n_fft;
  const int32_t win = p->config.win_length;
  p->window = static_cast<double*>(calloc(n_fft, sizeof(double)));
  if (p->window == nullptr) return false;
  const int32_t left = (n_fft - win) / 2;
  if (win == 1) {
    p->window[left] = 1.0;
    return true;
  }
  double* angles = static_cast<double*>(malloc(sizeof(double) * (win + 1)));
  if (angles == nullptr) return false;
  linspace(-kPi, kPi, win + 1, angles);
  for (int32_t i = 0; i < win; ++i) p->window[left + i] = 0.5 + 0.5 * cos(angles[i]);
  free(angles);
  return true;
}

// librosa.filters.mel(dtype=float32), stored sparsely: the weights of band b are the bins
// band_first[b] .. band_first[b] + band_count[b] - 1.
bool build_filterbank(MelSpec* p) {
  const MelSpecConfig& c = p->config;
  const int32_t n_mels = c.n_mels;
  const int32_t n_bins = p->n_bins;
  const bool htk = c.htk != 0;
  double* mel_f = static_cast<double*>(malloc(sizeof(double) * (n_mels + 2)));
  double* fft_f = static_cast<double*>(malloc(sizeof(double) * n_bins));
  float* dense = static_cast<float*>(malloc(sizeof(float) * n_bins));
  p->band_first = static_cast<int32_t*>(calloc(n_mels, sizeof(int32_t)));
  p->band_count = static_cast<int32_t*>(calloc(n_mels, sizeof(int32_t)));
  p->band_offset = static_cast<int32_t*>(calloc(n_mels, sizeof(int32_t)));
  bool ok = mel_f && fft_f && dense && p->band_first && p->band_count && p->band_offset;
  if (ok) {
    // numpy.fft.rfftfreq(n_fft, d=1.0 / sr): k * (1.0 / (n * d))
    const double d = 1.0 / static_cast<double>(c.sample_rate_hz);
    const double val = 1.0 / (static_cast<double>(c.n_fft) * d);
    for (int32_t k = 0; k < n_bins; ++k) fft_f[k] = static_cast<double>(k) * val;
    linspace(hz_to_mel(c.fmin_hz, htk), hz_to_mel(c.fmax_hz, htk), n_mels + 2, mel_f);
    for (int32_t i = 0; i < n_mels + 2; ++i) mel_f[i] = mel_to_hz(mel_f[i], htk);
  }
  // Two passes: count the non-zero weights, then store them.
  int64_t total = 0;
  for (int pass = 0; ok && pass < 2; ++pass) {
    total = 0;
    for (int32_t b = 0; b < n_mels; ++b) {
      const double fdiff_lo = mel_f[b + 1] - mel_f[b];
      const double fdiff_hi = mel_f[b + 2] - mel_f[b + 1];
      const double enorm = 2.0 / (mel_f[b + 2] - mel_f[b]);
      int32_t first = -1;
      int32_t last = -1;
      for (int32_t k = 0; k < n_bins; ++k) {
        const double lower = -(mel_f[b] - fft_f[k]) / fdiff_lo;
        const double upper = (mel_f[b + 2] - fft_f[k]) / fdiff_hi;
        double w = lower < upper ? lower : upper;
        if (!(w > 0.0)) w = 0.0;
        float w32 = static_cast<float>(w);
        if (c.mel_norm == 1) w32 = static_cast<float>(static_cast<double>(w32) * enorm);
        dense[k] = w32;
        if (w32 != 0.0f) {
          if (first < 0) first = k;
          last = k;
        }
      }
      const int32_t count = first < 0 ? 0 : last - first + 1;
      if (pass == 1) {
        p->band_first[b] = first < 0 ? 0 : first;
        p->band_count[b] = count;
        p->band_offset[b] = static_cast<int32_t>(total);
        for (int32_t k = 0; k < count; ++k) p->weights[total + k] = dense[first + k];
        if (count > 0 && first + count > p->used_bins) p->used_bins = first + count;
      }
      total += count;
    }
    if (pass == 0) {
      p->weights = static_cast<float*>(malloc(sizeof(float) * (total > 0 ? total : 1)));
      ok = p->weights != nullptr;
    }
  }
  free(mel_f);
  free(fft_f);
  free(dense);
  return ok;
}

// numpy.abs on complex64 (numpy >= 2 SIMD loop): larger * sqrt(fma(r, r, 1)), r = smaller / larger,
// all in float32. The float32 fma is done exactly: r * r is exact in double and the sum is rounded
// to odd before the final rounding to float32.
inline float numpy_cabsf(float re, float im) {
  const float a = fabsf(re);
  const float b = fabsf(im);
  const float larger = a > b ? a : b;
  const float smaller = a > b ? b : a;
  if (larger == 0.0f) return 0.0f;
  const float ratio = smaller / larger;
  const double product = static_cast<double>(ratio) * static_cast<double>(ratio);
  double sum = 1.0 + product;
  const double residual = product - (sum - 1.0);  // exact: sum - 1.0 and the difference are representable
  // Round to odd, without branches: an inexact sum with an even last bit moves one ulp towards the
  // exact value (sum > 0, so +1 on the bits is one ulp up).
  uint64_t bits;
  memcpy(&bits, &sum, sizeof bits);
  const uint64_t direction = static_cast<uint64_t>(static_cast<int64_t>(residual > 0.0) -
                                                   static_cast<int64_t>(residual < 0.0));
  bits += direction & ((bits & 1u) - 1u);
  memcpy(&sum, &bits, sizeof bits);
  const float fused = static_cast<float>(sum);
  return __builtin_sqrtf(fused) * larger;
}

// numpy's `magnitude ** power` for a float32 array and a Python float exponent.
inline float apply_power(float magnitude, double power) {
  if (power == 2.0) return magnitude * magnitude;
  if (power == 1.0) return magnitude;
  if (power == 0.5) return __builtin_sqrtf(magnitude);
  return static_cast<float>(pow(static_cast<double>(magnitude), static_cast<double>(static_cast<float>(power))));
}

// numpy.pad(x, (left, right), mode) for mode 'constant' (zeros) or 'reflect' (repeated reflection;
// a single sample is edge-padded, as numpy does).
void pad_segment(const float* x, int64_t length, int64_t left, int64_t right, bool reflect, float* out) {
  const int64_t period = 2 * (length - 1);
  for (int64_t j = 0; j < left + length + right; ++j) {
    int64_t i = j - left;
    if (i >= 0 && i < length) {
      out[j] = x[i];
    } else if (!reflect) {
      out[j] = 0.0f;
    } else if (length == 1) {
      out[j] = x[0];
    } else {
      i %= period;
      if (i < 0) i += period;
      if (i >= length) i = period - i;
      out[j] = x[i];
    }
  }
}

// Index of the first NaN or infinity in x[0:n], or -1.
int32_t first_non_finite(const float* x, int32_t n) {
  int32_t i = 0;
#if defined(__wasm_simd128__)
  const v128_t exponent = wasm_i32x4_splat(0x7f800000);
  for (; i + 16 <= n; i += 16) {
    v128_t any = wasm_i32x4_splat(0);
    for (int32_t u = 0; u < 16; u += 4) {
      any = wasm_v128_or(any, wasm_i32x4_eq(wasm_v128_and(wasm_v128_load(x + i + u), exponent), exponent));
    }
    if (wasm_v128_any_true(any)) break;  // the scalar loop below finds which sample
  }
#endif
  for (; i < n; ++i) {
    if (!isfinite(x[i])) return i;
  }
  return -1;
}

bool reserve_pointers(const float*** buffer, int64_t* capacity, int64_t needed) {
  if (needed <= *capacity) return true;
  const float** grown = static_cast<const float**>(malloc(sizeof(float*) * needed));
  if (grown == nullptr) return false;
  free(*buffer);
  *buffer = grown;
  *capacity = needed;
  return true;
}

bool reserve(float** buffer, int64_t* capacity, int64_t needed) {
  if (needed <= *capacity) return true;
  float* grown = static_cast<float*>(malloc(sizeof(float) * needed));
  if (grown == nullptr) return false;
  free(*buffer);
  *buffer = grown;
  *capacity = needed;
  return true;
}

// Spectrum of one frame into `bins` (n_bins points): float64 window * float32 samples, real FFT.
void frame_spectrum(MelSpec* p, const float* samples, Complex* bins) {
  const int32_t n_fft = p->config.n_fft;
  int32_t j = 0;
#if defined(__wasm_simd128__)
  for (; j + 8 <= n_fft; j += 8) {
    for (int32_t u = 0; u < 8; u += 4) {
      const v128_t x = wasm_v128_load(samples + j + u);
      const v128_t x_high = wasm_i32x4_shuffle(x, x, 2, 3, 2, 3);
      double* out = p->frame + j + u;
      const double* w = p->window + j + u;
      wasm_v128_store(out, wasm_f64x2_mul(wasm_v128_load(w), wasm_f64x2_promote_low_f32x4(x)));
      wasm_v128_store(out + 2, wasm_f64x2_mul(wasm_v128_load(w + 2), wasm_f64x2_promote_low_f32x4(x_high)));
    }
  }
#endif
  for (; j < n_fft; ++j) p->frame[j] = p->window[j] * static_cast<double>(samples[j]);
  real_fft_forward(&p->fft, p->frame, bins);
}

#if defined(__wasm_simd128__)
// numpy_cabsf on four points at once (lane i = frame i), with the same roundings.
inline v128_t numpy_cabsf4(v128_t c0, v128_t c1, v128_t c2, v128_t c3) {
  // complex128 -> complex64, then split into re and im lanes
  const v128_t d01 = wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(c0), wasm_f32x4_demote_f64x2_zero(c1), 0, 1, 4, 5);
  const v128_t d23 = wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(c2), wasm_f32x4_demote_f64x2_zero(c3), 0, 1, 4, 5);
  const v128_t a = wasm_f32x4_abs(wasm_i32x4_shuffle(d01, d23, 0, 2, 4, 6));
  const v128_t b = wasm_f32x4_abs(wasm_i32x4_shuffle(d01, d23, 1, 3, 5, 7));
  const v128_t larger = wasm_f32x4_pmax(a, b);
  const v128_t smaller = wasm_f32x4_pmin(a, b);
  const v128_t is_zero = wasm_f32x4_eq(larger, wasm_f32x4_splat(0.0f));
  const v128_t ratio = wasm_v128_andnot(wasm_f32x4_div(smaller, larger), is_zero);  // 0/0 -> 0
  const v128_t one = wasm_f64x2_splat(1.0);
  const v128_t low_bit = wasm_i64x2_splat(1);
  v128_t fused[2];
  for (int half = 0; half < 2; ++half) {
    const v128_t r = wasm_f64x2_promote_low_f32x4(half == 0 ? ratio : wasm_i32x4_shuffle(ratio, ratio, 2, 3, 2, 3));
    const v128_t product = wasm_f64x2_mul(r, r);
    const v128_t sum = wasm_f64x2_add(one, product);
    const v128_t residual = wasm_f64x2_sub(product, wasm_f64x2_sub(sum, one));
    const v128_t zero = wasm_f64x2_splat(0.0);
    // direction = +1 / -1 / 0 as (lt mask) - (gt mask); applied only where the last bit is even
    const v128_t direction = wasm_i64x2_sub(wasm_f64x2_lt(residual, zero), wasm_f64x2_gt(residual, zero));
    const v128_t even = wasm_i64x2_eq(wasm_v128_and(sum, low_bit), wasm_i64x2_splat(0));
    fused[half] = wasm_f32x4_demote_f64x2_zero(wasm_i64x2_add(sum, wasm_v128_and(direction, even)));
  }
  const v128_t f = wasm_i32x4_shuffle(fused[0], fused[1], 0, 1, 4, 5);
  return wasm_f32x4_mul(wasm_f32x4_sqrt(f), larger);
}
#endif

// Power spectra of kBatch frames (spectra in p->bins) into p->power, bin-major: power[k * kBatch + i],
// for the bins below used_bins (the others have no mel weight).
void batch_power(MelSpec* p) {
  const int32_t n_bins = p->n_bins;
  const double exponent = p->config.power;
  const Complex* bins = p->bins;
  double* power = p->power;
#if defined(__wasm_simd128__)
  static_assert(kBatch % 4 == 0, "the SIMD path handles groups of four frames");
  const int32_t used_bins = p->used_bins;
  for (int32_t k = 0; k < used_bins; ++k) {
    for (int32_t g = 0; g < kBatch; g += 4) {
      const Complex* c = bins + g * n_bins + k;
      v128_t magnitude = numpy_cabsf4(wasm_v128_load(c), wasm_v128_load(c + n_bins), wasm_v128_load(c + 2 * n_bins),
                                      wasm_v128_load(c + 3 * n_bins));
      v128_t value;
      if (exponent == 2.0) {
        value = wasm_f32x4_mul(magnitude, magnitude);
      } else {
        float lanes[4];
        wasm_v128_store(lanes, magnitude);
        for (int i = 0; i < 4; ++i) lanes[i] = apply_power(lanes[i], exponent);
        value = wasm_v128_load(lanes);
      }
      double* out = power + k * kBatch + g;
      wasm_v128_store(out, wasm_f64x2_promote_low_f32x4(value));
      wasm_v128_store(out + 2, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(value, value, 2, 3, 2, 3)));
    }
  }
#else
  for (int32_t k = 0; k < p->used_bins; ++k) {
    for (int32_t i = 0; i < kBatch; ++i) {
      const Complex c = bins[i * n_bins + k];
      const float magnitude = numpy_cabsf(static_cast<float>(c.re), static_cast<float>(c.im));
      power[k * kBatch + i] = apply_power(magnitude, exponent);
    }
  }
#endif
}

#if defined(__wasm_simd128__)
// acc (two float32 values held as doubles) + w * s, rounded to double and then to float32.
inline v128_t fma_f32x2(v128_t acc, v128_t w, const double* s) {
  return wasm_f64x2_promote_low_f32x4(wasm_f32x4_demote_f64x2_zero(wasm_f64x2_add(acc, wasm_f64x2_mul(w, wasm_v128_load(s)))));
}
#endif

// Mel sums of a batch: float32 accumulation with a fused multiply-add per bin, in bin order, which is
// what numpy's einsum gets from a BLAS sgemm (OpenBLAS on x86-64 and ARMv8). The product of two floats
// is exact in double; the sum is rounded to double, then to float (this differs from a true fmaf only
// on double-rounding ties, about 2^-29 of the operations). The kBatch frames are independent chains.
// Writes `count` frames from column t.
void batch_mel(MelSpec* p, int64_t t, int32_t count, int64_t n_frames) {
  for (int32_t b = 0; b < p->config.n_mels; ++b) {
    const float* w = p->weights + p->band_offset[b];
    const double* s = p->power + static_cast<int64_t>(p->band_first[b]) * kBatch;
    const int32_t n = p->band_count[b];
    float acc[kBatch];
#if defined(__wasm_simd128__)
    static_assert(kBatch == 8, "the SIMD mel sums handle eight frames");
    v128_t a0 = wasm_f64x2_splat(0.0), a1 = a0, a2 = a0, a3 = a0;
    for (int32_t k = 0; k < n; ++k) {
      const v128_t wk = wasm_f64x2_splat(static_cast<double>(w[k]));
      const double* sk = s + k * kBatch;
      a0 = fma_f32x2(a0, wk, sk);
      a1 = fma_f32x2(a1, wk, sk + 2);
      a2 = fma_f32x2(a2, wk, sk + 4);
      a3 = fma_f32x2(a3, wk, sk + 6);
    }
    wasm_v128_store(acc, wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(a0), wasm_f32x4_demote_f64x2_zero(a1), 0, 1,
                                            4, 5));
    wasm_v128_store(acc + 4, wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(a2), wasm_f32x4_demote_f64x2_zero(a3), 0,
                                                1, 4, 5));
#else
    for (int32_t i = 0; i < kBatch; ++i) acc[i] = 0.0f;
    for (int32_t k = 0; k < n; ++k) {
      const double wk = w[k];
      for (int32_t i = 0; i < kBatch; ++i) {
        acc[i] = static_cast<float>(static_cast<double>(acc[i]) + wk * s[k * kBatch + i]);
      }
    }
#endif
    float* out = p->output + b * n_frames + t;
    for (int32_t i = 0; i < count; ++i) out[i] = acc[i];
  }
}

// Frames t .. t + count - 1 (count <= kBatch): spectra, power, mel sums.
void process_frames(MelSpec* p, int64_t t, int32_t count, int64_t n_frames) {
  const int32_t n_bins = p->n_bins;
  for (int32_t i = 0; i < count; ++i) frame_spectrum(p, p->frame_starts[t + i], p->bins + i * n_bins);
  if (count < kBatch) memset(p->bins + count * n_bins, 0, sizeof(Complex) * n_bins * (kBatch - count));
  batch_power(p);
  batch_mel(p, t, count, n_frames);
}

// librosa.power_to_db in place on the float32 mel spectrogram.
void power_to_db(MelSpec* p, int64_t count) {
  const MelSpecConfig& c = p->config;
  const float amin = static_cast<float>(c.db_amin);
  float* out = p->output;
  float peak = -INFINITY;
  for (int64_t i = 0; i < count; ++i) {
    const float v = out[i] > amin ? out[i] : amin;
    // float32 log10, correctly rounded but for ties: log(v) / ln(10) in double (musl's log is the fast
    // table-driven one; its log10 is not), then rounded once to float.
    float db = 10.0f * static_cast<float>(log(static_cast<double>(v)) * kInvLn10);
    db = static_cast<float>(static_cast<double>(db) - p->ref_db);
    out[i] = db;
    if (db > peak) peak = db;
  }
  if (c.top_db >= 0.0) {
    const float floor_db = peak - static_cast<float>(c.top_db);
    for (int64_t i = 0; i < count; ++i) {
      if (out[i] < floor_db) out[i] = floor_db;
    }
  }
}

bool validate(const MelSpecConfig* c, char* error, size_t size, int32_t* status) {
  *status = kErrInvalidArgument;
#define MELSPEC_REQUIRE(cond, ...)            \
  if (!(cond)) {                              \
    set_error(error, size, __VA_ARGS__);      \
    return false;                             \
  }
  MELSPEC_REQUIRE(c->sample_rate_hz > 0, "sample_rate_hz must be > 0 (got %.0f)", c->sample_rate_hz);
  MELSPEC_REQUIRE(c->n_fft >= 1 && c->n_fft <= kMaxFft, "n_fft must be in 1..%.0f (got %.0f)", kMaxFft, c->n_fft);
  if (!is_smooth_235(c->n_fft)) {
    *status = kErrUnsupportedFftSize;
    set_error(error, size, "n_fft=%.0f is not of the form 2^a * 3^b * 5^c; choose e.g. 512, 960, 1000 or 1024",
              c->n_fft);
    return false;
  }
  MELSPEC_REQUIRE(c->hop_length >= 1, "hop_length must be >= 1 (got %.0f)", c->hop_length);
  MELSPEC_REQUIRE(c->win_length >= 1 && c->win_length <= c->n_fft, "win_length must be in 1..n_fft=%.0f (got %.0f)",
                  c->n_fft, c->win_length);
  MELSPEC_REQUIRE(c->window == 0, "window code %.0f is unknown (0 = periodic hann)", c->window);
  MELSPEC_REQUIRE(c->center == 0 || c->center == 1, "center must be 0 or 1 (got %.0f)", c->center);
  MELSPEC_REQUIRE(c->pad_mode == 0 || c->pad_mode == 1, "pad_mode must be 0 (constant) or 1 (reflect) (got %.0f)",
                  c->pad_mode);
  MELSPEC_REQUIRE(c->n_mels >= 1 && c->n_mels <= kMaxMels, "n_mels must be in 1..%.0f (got %.0f)", kMaxMels,
                  c->n_mels);
  MELSPEC_REQUIRE(isfinite(c->fmin_hz) && c->fmin_hz >= 0.0, "fmin_hz must be finite and >= 0 (got %g)", c->fmin_hz);
  MELSPEC_REQUIRE(isfinite(c->fmax_hz) && c->fmax_hz > c->fmin_hz, "fmax_hz must be finite and > fmin_hz (got %g)",
                  c->fmax_hz);
  MELSPEC_REQUIRE(isfinite(c->power) && c->power > 0.0, "power must be finite and > 0 (got %g)", c->power);
  MELSPEC_REQUIRE(c->htk == 0 || c->htk == 1, "htk must be 0 or 1 (got %.0f)", c->htk);
  MELSPEC_REQUIRE(c->mel_norm == 0 || c->mel_norm == 1, "mel_norm must be 0 (none) or 1 (slaney) (got %.0f)",
                  c->mel_norm);
  MELSPEC_REQUIRE(isfinite(c->db_ref) && c->db_ref > 0.0, "db_ref must be finite and > 0 (got %g)", c->db_ref);
  MELSPEC_REQUIRE(isfinite(c->db_amin) && c->db_amin > 0.0, "db_amin must be finite and > 0 (got %g)", c->db_amin);
  MELSPEC_REQUIRE(!isinf(c->top_db), "top_db must be finite, or negative for none (got %g)", c->top_db);
#undef MELSPEC_REQUIRE
  *status = kOk;
  return true;
}

}  // namespace

int32_t melspec_plan_create(const MelSpecConfig* config, MelSpec** out, char* error, size_t error_size) {
  *out = nullptr;
  int32_t status = kOk;
  if (!validate(config, error, error_size, &status)) return status;
  MelSpec* p = static_cast<MelSpec*>(calloc(1, sizeof(MelSpec)));
  if (p == nullptr) {
    set_error(error, error_size, "out of memory creating the plan");
    return kErrOutOfMemory;
  }
  p->config = *config;
  if (isnan(p->config.top_db)) p->config.top_db = -1.0;
  p->n_bins = config->n_fft / 2 + 1;
  // power_to_db: 10 * log10(max(amin, |ref|)) in float64
  p->ref_db = 10.0 * log10(config->db_ref > config->db_amin ? config->db_ref : config->db_amin);
  bool ok = real_fft_init(&p->fft, config->n_fft) && build_window(p);
  if (ok) {
    p->frame = real_fft_scratch(&p->fft);
    if (p->frame == nullptr) {
      p->frame = static_cast<double*>(malloc(sizeof(double) * config->n_fft));
      p->frame_owned = true;
    }
    p->fft_check = static_cast<double*>(calloc(config->n_fft + 2, sizeof(double)));
    p->bins = static_cast<Complex*>(malloc(sizeof(Complex) * p->n_bins * kBatch));
    p->power = static_cast<double*>(malloc(sizeof(double) * p->n_bins * kBatch));
    ok = p->frame && p->fft_check && p->bins && p->power && build_filterbank(p);
  }
  if (!ok) {
    melspec_plan_destroy(p);
    set_error(error, error_size, "out of memory creating the plan (n_fft=%.0f, n_mels=%.0f)", config->n_fft,
              config->n_mels);
    return kErrOutOfMemory;
  }
  *out = p;
  return kOk;
}

void melspec_plan_destroy(MelSpec* p) {
  if (p == nullptr) return;
  real_fft_free(&p->fft);
  free(p->window);
  if (p->frame_owned) free(p->frame);
  free(p->bins);
  free(p->power);
  free(p->frame_starts);
  free(p->fft_check);
  free(p->band_first);
  free(p->band_count);
  free(p->band_offset);
  free(p->weights);
  free(p->input);
  free(p->output);
  free(p->padded);
  free(p);
}

float* melspec_plan_input(MelSpec* p, int32_t n_samples) {
  if (n_samples < 1) n_samples = 1;
  if (!reserve(&p->input, &p->input_capacity, n_samples)) return nullptr;
  return p->input;
}

float* melspec_plan_output(MelSpec* p) { return p->output; }

double* melspec_plan_fft_buffer(MelSpec* p) { return p->fft_check; }

void melspec_plan_rfft(MelSpec* p) {
  real_fft_forward(&p->fft, p->fft_check, p->bins);
  for (int32_t k = 0; k < p->n_bins; ++k) {
    p->fft_check[2 * k] = p->bins[k].re;
    p->fft_check[2 * k + 1] = p->bins[k].im;
  }
}

int32_t melspec_plan_compute(MelSpec* p, int32_t n_samples, char* error, size_t error_size) {
  const MelSpecConfig& c = p->config;
  if (n_samples < 1) {
    set_error(error, error_size, "n_samples must be >= 1 (got %.0f)", n_samples);
    return kErrTooFewSamples;
  }
  if (n_samples > p->input_capacity) {
    set_error(error, error_size, "n_samples=%.0f exceeds the input buffer (%.0f); call melspec_input first",
              n_samples, static_cast<double>(p->input_capacity));
    return kErrInvalidArgument;
  }
  const float* y = p->input;
  const int32_t bad = first_non_finite(y, n_samples);
  if (bad >= 0) {
    set_error(error, error_size, "audio is not finite at sample %.0f (value %g)", bad, y[bad]);
    return kErrNonFiniteInput;
  }
  const int64_t n = n_samples;
  const int64_t n_fft = c.n_fft;
  const int64_t hop = c.hop_length;
  const int64_t half = n_fft / 2;
  const bool reflect = c.pad_mode == 1;

  // Frame layout exactly as librosa.stft (0.11) builds it: head frames from a padded prefix,
  // middle frames straight from y, tail frames from a padded suffix; short signals are padded whole.
  int64_t head_frames = 0, mid_frames = 0, tail_frames = 0;
  int64_t head_len = 0, head_left = 0, head_right = 0;  // segment y[0:head_len] padded (left, right)
  int64_t mid_start = 0;
  int64_t tail_start = 0, tail_len = 0;                  // segment y[tail_start:] padded (0, half)
  if (c.center) {
    const int64_t start_k = (half + hop - 1) / hop;
    const int64_t tail_k = floor_div(n + half - n_fft, hop) + 1;
    if (tail_k <= start_k) {
      head_len = n;
      head_left = half;
      head_right = half;
      head_frames = 1 + floor_div(n + 2 * half - n_fft, hop);
    } else {
      mid_start = start_k * hop - half;
      head_len = (start_k - 1) * hop - half + n_fft + 1;
      if (head_len > n) head_len = n;
      head_left = half;
      head_frames = 1 + floor_div(head_len + half - n_fft, hop);
      if (head_frames > start_k) head_frames = start_k;
      mid_frames = 1 + floor_div(n - mid_start - n_fft, hop);
      if (tail_k * hop - half + n_fft <= n + half) {
        tail_start = tail_k * hop - half;
        tail_len = n - tail_start;
        tail_frames = 1 + floor_div(tail_len + half - n_fft, hop);
      }
    }
  } else {
    if (n < n_fft) {
      set_error(error, error_size, "center=0 needs at least n_fft=%.0f samples (got %.0f)", static_cast<double>(n_fft),
                n_samples);
      return kErrTooFewSamples;
    }
    mid_frames = 1 + (n - n_fft) / hop;
  }
  const int64_t n_frames = head_frames + mid_frames + tail_frames;
  const int64_t head_padded = head_frames > 0 ? head_left + head_len + head_right : 0;
  const int64_t tail_padded = tail_frames > 0 ? tail_len + half : 0;
  if (!reserve(&p->output, &p->output_capacity, n_frames * c.n_mels) ||
      !reserve(&p->padded, &p->padded_capacity, head_padded + tail_padded + 1) ||
      !reserve_pointers(&p->frame_starts, &p->frame_starts_capacity, n_frames)) {
    set_error(error, error_size, "out of memory for %.0f frames", static_cast<double>(n_frames));
    return kErrOutOfMemory;
  }
  int64_t t = 0;
  if (head_frames > 0) {
    pad_segment(y, head_len, head_left, head_right, reflect, p->padded);
    for (int64_t f = 0; f < head_frames; ++f) p->frame_starts[t++] = p->padded + f * hop;
  }
  for (int64_t f = 0; f < mid_frames; ++f) p->frame_starts[t++] = y + mid_start + f * hop;
  if (tail_frames > 0) {
    float* tail = p->padded + head_padded;
    pad_segment(y + tail_start, tail_len, 0, half, reflect, tail);
    for (int64_t f = 0; f < tail_frames; ++f) p->frame_starts[t++] = tail + f * hop;
  }
  for (t = 0; t < n_frames; t += kBatch) {
    const int64_t left = n_frames - t;
    process_frames(p, t, static_cast<int32_t>(left < kBatch ? left : kBatch), n_frames);
  }
  power_to_db(p, n_frames * c.n_mels);
  return static_cast<int32_t>(n_frames);
}

}  // namespace melspec
