// The window and the mel filterbank exactly as librosa 0.11 (with scipy and numpy) builds them,
// in float64, with the filterbank rounded to float32 the way librosa.filters.mel does.
#ifndef MELSPEC_LIBROSA_FILTERS_H
#define MELSPEC_LIBROSA_FILTERS_H

#include <stdint.h>

namespace melspec {

// scipy.signal.get_window('hann', win_length, fftbins=True) zero-padded to n_fft like
// librosa.util.pad_center. out: n_fft doubles. Needs 1 <= win_length <= n_fft; false when out of memory.
bool hann_window(int32_t n_fft, int32_t win_length, double* out);

// librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk, norm, dtype=float32), stored sparsely:
// band b has the weights weights[offset[b] + j] for bins first[b] + j, j < count[b].
struct MelFilterbank {
  int32_t n_mels = 0;
  int32_t* first = nullptr;
  int32_t* count = nullptr;
  int32_t* offset = nullptr;
  float* weights = nullptr;
  int32_t used_bins = 0;  // every non-zero weight lies in bins 0 .. used_bins - 1
};

bool mel_filterbank_init(MelFilterbank* fb, int32_t sample_rate_hz, int32_t n_fft, int32_t n_mels, double fmin_hz,
                         double fmax_hz, bool htk, bool slaney_norm);
void mel_filterbank_free(MelFilterbank* fb);

}  // namespace melspec

#endif  // MELSPEC_LIBROSA_FILTERS_H
