"""Judge a listening model as detectors are judged: false rejects and false accepts per hour.

A clip classifier's accuracy says little about a model that listens to a microphone:
there the windows next to a word hold half of it, noise goes on for hours, and
people say other words. This module

1. builds long test recordings from labelled clips (:func:`build_test_recording`):
   words and unknown speech spliced into background recordings at random times and
   levels, their positions recorded (:class:`Event`);
2. scores every window of them once (:func:`window_scores`) and replays the
   recogniser's decision rule (:class:`~mm_browserfft.listen.DecisionRule`) over those
   scores at many thresholds (:func:`replay`);
3. matches detections to the words said (:func:`match_detections`) and reports, per
   keyword and overall, the false-reject rate, false accepts per hour, the DET curve
   over thresholds, the ROC AUC of window scores (as TF.js ``evaluate()`` computes it:
   windows of words against windows of background) and the lowest threshold that keeps
   false accepts under a budget (:func:`streaming_report`, :func:`plot_det`); to judge
   many settings of one hop, score once (:func:`score_recordings`) and report on the
   scores (:func:`report_on_scores`);
4. chooses the threshold an exported model listens at from its test clips
   (:func:`calibrate_listening`), which ``train`` writes into the model's sidecar.

Matching rule: a detection is decided when its window ends (``end_s``). A detection
of word ``w`` is a *hit* when it is decided after an event of ``w`` began and at most
``max_delay_s`` (0.5 s) after it ended, and that event was not hit before: a word cannot
be heard before it is said, and a late answer is no answer. Every other detection is a
*false accept* (a second detection of the same word, a detection during another word or
unknown speech, or one in background alone: :func:`explain_false_accepts` tells which, and
which keywords were heard as which). An event never hit is a *false reject*.
"""

from .recordings import (
    BACKGROUND_FOLDERS,
    UNKNOWN_FOLDER,
    Event,
    LongRecording,
    background_paths_of,
    build_test_recording,
    build_test_recordings,
    build_test_recordings_from_folder,
)
from .calibration import (
    CALIBRATION_BUDGET,
    CALIBRATION_CONFIDENCE,
    LOWEST_CALIBRATED_THRESHOLD,
    calibrate_listening,
    poisson_upper_bound,
)
from .scoring import (
    DEFAULT_THRESHOLDS,
    FALSE_ACCEPT_CAUSES,
    ScoredRecording,
    explain_false_accepts,
    match_detections,
    plot_det,
    ranked_confusions,
    replay,
    report_on_scores,
    roc_auc,
    score_recordings,
    streaming_report,
    window_scores,
)

__all__ = [
    "Event",
    "LongRecording",
    "build_test_recording",
    "build_test_recordings",
    "build_test_recordings_from_folder",
    "background_paths_of",
    "BACKGROUND_FOLDERS",
    "UNKNOWN_FOLDER",
    "window_scores",
    "replay",
    "match_detections",
    "explain_false_accepts",
    "ranked_confusions",
    "FALSE_ACCEPT_CAUSES",
    "roc_auc",
    "streaming_report",
    "ScoredRecording",
    "score_recordings",
    "report_on_scores",
    "plot_det",
    "calibrate_listening",
    "poisson_upper_bound",
    "CALIBRATION_CONFIDENCE",
    "DEFAULT_THRESHOLDS",
    "LOWEST_CALIBRATED_THRESHOLD",
    "CALIBRATION_BUDGET",
]
