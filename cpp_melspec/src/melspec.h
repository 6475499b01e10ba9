// The log-mel spectrogram of librosa 0.11, computed in C++:
//   power_to_db(melspectrogram(y, ...), ref, amin, top_db)
// with every setting given at run time (MelSpecConfig), reproducing librosa's roundings:
// float64 window * float32 frame -> float64 rfft -> complex64 -> numpy's float32 |z| -> float32 power
// -> float32 filterbank weights (built in float64 exactly like librosa.filters.mel) -> mel sums
// (float32 fused multiply-adds in bin order, like a BLAS sgemm) -> float32 dB.
#ifndef MELSPEC_MELSPEC_H
#define MELSPEC_MELSPEC_H

#include <stddef.h>
#include <stdint.h>

namespace melspec {

// Error codes returned (negated) by the C ABI; 0 and positive values mean success.
enum Status : int32_t {
  kOk = 0,
  kErrInvalidArgument = -1,
  kErrUnsupportedFftSize = -2,
  kErrOutOfMemory = -3,
  kErrInvalidHandle = -4,
  kErrTooFewSamples = -5,
  kErrNonFiniteInput = -6,
  kErrTooManyHandles = -7,
};

struct MelSpecConfig {
  int32_t sample_rate_hz;
  int32_t n_fft;        // 2^a 3^b 5^c
  int32_t hop_length;
  int32_t win_length;   // <= n_fft
  int32_t window;       // 0 = periodic Hann (the only one)
  int32_t center;       // 0 or 1
  int32_t pad_mode;     // 0 = constant (zeros), 1 = reflect
  int32_t n_mels;
  double fmin_hz;
  double fmax_hz;
  double power;         // exponent of |STFT|
  int32_t htk;          // 0 = Slaney mel scale, 1 = HTK
  int32_t mel_norm;     // 0 = none, 1 = Slaney (area) normalisation
  double db_ref;
  double db_amin;
  double top_db;        // < 0 (or NaN) = no clipping
};

struct MelSpec;

// Creates a plan; on failure returns a negative Status and writes a message to `error`.
int32_t melspec_plan_create(const MelSpecConfig* config, MelSpec** out, char* error, size_t error_size);
void melspec_plan_destroy(MelSpec* plan);

// Input buffer of at least n_samples float32 samples (grown when needed); nullptr when out of memory.
float* melspec_plan_input(MelSpec* plan, int32_t n_samples);
// Spectrogram of the first n_samples of the input buffer into the output buffer:
// float32 dB, n_mels x n_frames, row-major. Returns n_frames or a negative Status.
int32_t melspec_plan_compute(MelSpec* plan, int32_t n_samples, char* error, size_t error_size);
float* melspec_plan_output(MelSpec* plan);
// Scratch for checking the FFT: n_fft + 2 doubles; melspec_plan_rfft replaces the first n_fft reals by
// the n_fft / 2 + 1 complex bins (re, im interleaved).
double* melspec_plan_fft_buffer(MelSpec* plan);
void melspec_plan_rfft(MelSpec* plan);

}  // namespace melspec

#endif  // MELSPEC_MELSPEC_H
