"""Stage 1, data: the BirdCLEF 2021 layout read into typed records, the species subset, the embedded synthetic
default, the Kaggle download and dataset summaries (figures in `birdlab.data.figures`)."""

from birdlab.data.birdclef2021 import (
    NOCALL,
    WINDOW_SECONDS,
    BirdCLEF2021,
    Recording,
    Soundscape,
    SoundscapeRow,
)
from birdlab.data.species import Species, SpeciesFilter, load_species
from birdlab.data.summary import (
    DatasetSummary,
    LabelTimeline,
    label_timeline,
    recording_durations_s,
    recording_locations,
    species_with_recordings,
    summarize_dataset,
)
from birdlab.data.synth import SynthConfig, ensure_synthetic, synthesize

__all__ = [
    "NOCALL", "WINDOW_SECONDS", "BirdCLEF2021", "DatasetSummary", "LabelTimeline", "Recording", "Soundscape",
    "SoundscapeRow", "Species", "SpeciesFilter", "SynthConfig", "ensure_synthetic", "label_timeline", "load_species",
    "recording_durations_s", "recording_locations", "species_with_recordings", "summarize_dataset", "synthesize",
]
