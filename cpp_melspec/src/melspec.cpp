// Log-mel spectrogram plan: window, padding, real FFT, numpy-exact |z|, sparse mel filterbank, dB.
// See melspec.h for the rounding chain and cpp_melspec/README.md for the reasoning.
#include "melspec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fft.h"
#include "framing.h"
#include "librosa_filters.h"
#include "numpy_ops.h"

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
  Complex2* bins = nullptr;    // kBatch / 2 x n_bins: the spectra of a batch of frames, two per point
  Complex* single = nullptr;   // n_bins: one spectrum (odd n_fft, and the FFT check)
  double* power = nullptr;     // n_bins x kBatch: float32 power values of a batch, bin-major
  const float** frame_starts = nullptr;  // n_frames pointers to the first sample of each frame
  int64_t frame_starts_capacity = 0;
  double* fft_check = nullptr; // n_fft + 2
  MelFilterbank filterbank{};
  double ref_db = 0.0;
  float* input = nullptr;
  int64_t input_capacity = 0;
  float* output = nullptr;
  int64_t output_capacity = 0;
  float* padded = nullptr;
  int64_t padded_capacity = 0;
};

namespace {

constexpr double kInvLn10 = 0.43429448190325182765112891891660508;  // 1 / ln(10)
constexpr int32_t kMaxFft = 1 << 20;
constexpr int32_t kMaxMels = 4096;
constexpr int32_t kBatch = 8;  // frames whose power and mel sums run side by side (independent chains)

void set_error(char* error, size_t size, const char* format, double a = 0.0, double b = 0.0) {
  if (error != nullptr && size > 0) snprintf(error, size, format, a, b);
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

// Spectra of two frames into `bins` (n_bins points; frame i in lane i): float64 window * float32
// samples, real FFT. Even n_fft transforms both at once; odd n_fft one after the other.
void frame_pair_spectrum(MelSpec* p, const float* a, const float* b, Complex2* bins) {
  const int32_t n_fft = p->config.n_fft;
  const double* w = p->window;
  Complex2* z = real_fft_scratch2(&p->fft);
  if (z == nullptr) {
    const float* frames[2] = {a, b};
    for (int i = 0; i < 2; ++i) {
      for (int32_t j = 0; j < n_fft; ++j) p->frame[j] = w[j] * static_cast<double>(frames[i][j]);
      real_fft_forward(&p->fft, p->frame, p->single);
      for (int32_t k = 0; k < p->n_bins; ++k) {
        bins[k].re[i] = p->single[k].re;
        bins[k].im[i] = p->single[k].im;
      }
    }
    return;
  }
  // point k of the packed real FFT: x[2k] + i x[2k+1], frame a in lane 0 and frame b in lane 1
  int32_t j = 0;
#if defined(__wasm_simd128__)
  for (; j + 4 <= n_fft; j += 4) {
    const v128_t ab = wasm_i32x4_shuffle(wasm_v128_load(a + j), wasm_v128_load(b + j), 0, 4, 1, 5);  // a0 b0 a1 b1
    const v128_t cd = wasm_i32x4_shuffle(wasm_v128_load(a + j), wasm_v128_load(b + j), 2, 6, 3, 7);  // a2 b2 a3 b3
    Complex2* out = z + j / 2;
    wasm_v128_store(out[0].re, wasm_f64x2_mul(wasm_f64x2_splat(w[j]), wasm_f64x2_promote_low_f32x4(ab)));
    wasm_v128_store(out[0].im, wasm_f64x2_mul(wasm_f64x2_splat(w[j + 1]),
                                              wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(ab, ab, 2, 3, 2, 3))));
    wasm_v128_store(out[1].re, wasm_f64x2_mul(wasm_f64x2_splat(w[j + 2]), wasm_f64x2_promote_low_f32x4(cd)));
    wasm_v128_store(out[1].im, wasm_f64x2_mul(wasm_f64x2_splat(w[j + 3]),
                                              wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(cd, cd, 2, 3, 2, 3))));
  }
#endif
  for (; j < n_fft; j += 2) {
    Complex2* out = z + j / 2;
    out->re[0] = w[j] * static_cast<double>(a[j]);
    out->re[1] = w[j] * static_cast<double>(b[j]);
    out->im[0] = w[j + 1] * static_cast<double>(a[j + 1]);
    out->im[1] = w[j + 1] * static_cast<double>(b[j + 1]);
  }
  real_fft_forward2(&p->fft, bins);
}

// Power spectra of kBatch frames (spectra in p->bins) into p->power, bin-major: power[k * kBatch + i],
// for the bins below used_bins (the others have no mel weight).
void batch_power(MelSpec* p) {
  const int32_t n_bins = p->n_bins;
  const double exponent = p->config.power;
  const Complex2* bins = p->bins;
  double* power = p->power;
  const int32_t used_bins = p->filterbank.used_bins;
#if defined(__wasm_simd128__)
  static_assert(kBatch % 4 == 0, "the SIMD path handles groups of four frames");
  for (int32_t k = 0; k < used_bins; ++k) {
    for (int32_t g = 0; g < kBatch; g += 4) {
      const Complex2* c0 = bins + (g / 2) * n_bins + k;  // frames g, g + 1
      const Complex2* c1 = c0 + n_bins;                  // frames g + 2, g + 3
      // complex128 -> complex64
      const v128_t re = wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(wasm_v128_load(c0->re)),
                                           wasm_f32x4_demote_f64x2_zero(wasm_v128_load(c1->re)), 0, 1, 4, 5);
      const v128_t im = wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(wasm_v128_load(c0->im)),
                                           wasm_f32x4_demote_f64x2_zero(wasm_v128_load(c1->im)), 0, 1, 4, 5);
      const v128_t magnitude = numpy_cabsf4(re, im);
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
  for (int32_t k = 0; k < used_bins; ++k) {
    for (int32_t i = 0; i < kBatch; ++i) {
      const Complex2& c = bins[(i / 2) * n_bins + k];
      const float magnitude = numpy_cabsf(static_cast<float>(c.re[i % 2]), static_cast<float>(c.im[i % 2]));
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
    const float* w = p->filterbank.weights + p->filterbank.offset[b];
    const double* s = p->power + static_cast<int64_t>(p->filterbank.first[b]) * kBatch;
    const int32_t n = p->filterbank.count[b];
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
  for (int32_t i = 0; i < kBatch; i += 2) {
    // a short last batch repeats its first frame in the unused lanes (their results are dropped)
    const float* a = p->frame_starts[t + (i < count ? i : 0)];
    const float* b = p->frame_starts[t + (i + 1 < count ? i + 1 : 0)];
    frame_pair_spectrum(p, a, b, p->bins + (i / 2) * n_bins);
  }
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
  p->window = static_cast<double*>(malloc(sizeof(double) * config->n_fft));
  bool ok = p->window != nullptr && real_fft_init(&p->fft, config->n_fft) &&
            hann_window(config->n_fft, config->win_length, p->window);
  if (ok) {
    p->frame = real_fft_scratch(&p->fft);
    if (p->frame == nullptr) {
      p->frame = static_cast<double*>(malloc(sizeof(double) * config->n_fft));
      p->frame_owned = true;
    }
    p->fft_check = static_cast<double*>(calloc(config->n_fft + 2, sizeof(double)));
    p->bins = static_cast<Complex2*>(malloc(sizeof(Complex2) * p->n_bins * (kBatch / 2)));
    p->single = static_cast<Complex*>(malloc(sizeof(Complex) * p->n_bins));
    p->power = static_cast<double*>(malloc(sizeof(double) * p->n_bins * kBatch));
    ok = p->frame && p->fft_check && p->bins && p->single && p->power &&
         mel_filterbank_init(&p->filterbank, config->sample_rate_hz, config->n_fft, config->n_mels, config->fmin_hz,
                             config->fmax_hz, config->htk != 0, config->mel_norm == 1);
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
  free(p->single);
  free(p->power);
  free(p->frame_starts);
  free(p->fft_check);
  mel_filterbank_free(&p->filterbank);
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
  real_fft_forward(&p->fft, p->fft_check, p->single);
  for (int32_t k = 0; k < p->n_bins; ++k) {
    p->fft_check[2 * k] = p->single[k].re;
    p->fft_check[2 * k + 1] = p->single[k].im;
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
  // Frame layout exactly as librosa.stft (0.11) builds it (see framing.h).
  FrameLayout layout;
  if (!frame_layout(n_samples, c.n_fft, c.hop_length, c.center != 0, &layout)) {
    set_error(error, error_size, "center=0 needs at least n_fft=%.0f samples (got %.0f)", c.n_fft, n_samples);
    return kErrTooFewSamples;
  }
  const int64_t n_frames = layout.n_frames();
  const int64_t head_padded = layout.head_padded_length();
  const int64_t tail_padded = layout.tail_padded_length();
  if (!reserve(&p->output, &p->output_capacity, n_frames * c.n_mels) ||
      !reserve(&p->padded, &p->padded_capacity, head_padded + tail_padded + 1) ||
      !reserve_pointers(&p->frame_starts, &p->frame_starts_capacity, n_frames)) {
    set_error(error, error_size, "out of memory for %.0f frames", static_cast<double>(n_frames));
    return kErrOutOfMemory;
  }
  const bool reflect = c.pad_mode == 1;
  const int64_t hop = c.hop_length;
  int64_t t = 0;
  if (layout.head_frames > 0) {
    pad_segment(y, layout.head_length, layout.head_left, layout.head_right, reflect, p->padded);
    for (int64_t f = 0; f < layout.head_frames; ++f) p->frame_starts[t++] = p->padded + f * hop;
  }
  for (int64_t f = 0; f < layout.middle_frames; ++f) p->frame_starts[t++] = y + layout.middle_start + f * hop;
  if (layout.tail_frames > 0) {
    float* tail = p->padded + head_padded;
    pad_segment(y + layout.tail_start, layout.tail_length, 0, layout.tail_right, reflect, tail);
    for (int64_t f = 0; f < layout.tail_frames; ++f) p->frame_starts[t++] = tail + f * hop;
  }
  for (t = 0; t < n_frames; t += kBatch) {
    const int64_t left = n_frames - t;
    process_frames(p, t, static_cast<int32_t>(left < kBatch ? left : kBatch), n_frames);
  }
  power_to_db(p, n_frames * c.n_mels);
  return static_cast<int32_t>(n_frames);
}

}  // namespace melspec
