"""Stage 2, features: audio loading (the device's loader), the librosa log-mel of one FeatureSpec, the on-disk
feature cache and example spectrograms (figures in `birdlab.features.figures`)."""

from birdlab.features.audio import find_audio_files, load_audio
from birdlab.features.cache import FeatureCache, scored_windows
from birdlab.features.examples import ExampleSpectrogram, example_spectrograms
from birdlab.features.log_mel import FeatureSpec, log_mel

__all__ = [
    "ExampleSpectrogram", "FeatureCache", "FeatureSpec", "example_spectrograms", "find_audio_files", "load_audio",
    "log_mel", "scored_windows",
]
