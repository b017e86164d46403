"""``python -m tools.pretrain``: synthesise -> new voices -> prepare (+ teacher) -> train -> write the base.

Run from the repository root after ``pip install -r tools/pretrain/requirements.txt``
(the teacher and the vocoder: tools of this recipe only). The data folder is
``--data`` or ``$MM_BROWSERFFT_DATA`` (:mod:`mm_browserfft.datasets`). Every stage
is seeded; the synthetic clips, the new voices and the prepared arrays live in the
work folder (``--work``, outside the repository); synthesis and voices resume when
their clips are there, training resumes from ``<work>/backup`` after a kill.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from typing import Sequence

from mm_browserfft.datasets import data_dir

from . import prepare, synth, targets, train, voices

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def export_base(work_dir: str, folder: str) -> str:
    """Write ``<work_dir>/base.weights.h5`` (an 18w model) as a float16 TF.js model with speech-commands metadata."""
    from mm_browserfft.base import BASE_LABELS_18W, build_18w
    from mm_browserfft.tfjs import save_tfjs, speech_commands_metadata

    model = build_18w()
    model.load_weights(os.path.join(work_dir, "base.weights.h5"))
    metadata = speech_commands_metadata(BASE_LABELS_18W, model_name="mm_browserfft-base-18w")
    return save_tfjs(model, folder, metadata=metadata, quantization="float16")


def main(argv: "Sequence[str] | None" = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.pretrain", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="Speech Commands subset (default: $MM_BROWSERFFT_DATA)")
    parser.add_argument("--work", default="/work/pretrain_work", help="scratch folder outside the repository")
    parser.add_argument("--clips-per-word", type=int, default=24, help="synthetic clips per word")
    parser.add_argument("--real-copies", type=int, default=6, help="augmented copies of each real clip")
    parser.add_argument("--voices-per-clip", type=int, default=6, help="WORLD voices made of each real clip")
    parser.add_argument("--voice-copies", type=int, default=2, help="augmented copies of each new voice")
    parser.add_argument("--synth-copies", type=int, default=3, help="augmented copies of each synthetic clip")
    parser.add_argument("--epochs", type=int, default=train.EPOCHS, help="training epochs (0: fit --minutes)")
    parser.add_argument("--distill-weight", type=float, default=train.DISTILL_WEIGHT, help="weight of the teacher regression")
    parser.add_argument("--targets", choices=targets.TARGETS, default="pooled", help="what of the teacher to regress")
    parser.add_argument("--freq-warp", type=float, default=1.0, help="largest random frequency stretch (1: none)")
    parser.add_argument("--init", default="bundled", help="base to start from: bundled, a folder, a URL, or random")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget of training with --epochs 0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(_REPO, "mm_browserfft", "assets", "base"))
    args = parser.parse_args(argv)
    data = args.data or os.fspath(data_dir())
    prepare.check_inputs(data)  # before minutes of synthesis, not after

    counts = synth.synthesize_vocabulary(
        os.path.join(args.work, "synth"), clips_per_word=args.clips_per_word, seed=args.seed
    )
    print(f"synth: {sum(counts.values())} clips of {len(counts)} words")
    speech = [p for p, word in prepare.real_clips(data)[0] if word != prepare.SILENCE]
    made = voices.make_voices(speech, args.work, voices_per_clip=args.voices_per_clip, seed=args.seed)
    print(f"voices: {made} new clips from {len(speech)} real training clips")
    sizes = prepare.prepare(
        data, args.work, real_copies=args.real_copies, voice_copies=args.voice_copies,
        synth_copies=args.synth_copies, seed=args.seed,
    )  # fmt: skip
    print(f"prepare: {sizes}")
    docs = os.path.join(_REPO, "docs")
    metrics = train.train(
        args.work, minutes=args.minutes, epochs=args.epochs, seed=args.seed, distill_weight=args.distill_weight,
        init=args.init, targets=args.targets, freq_warp=args.freq_warp, curves_png=os.path.join(docs, "images", "pretrain-curves.png"),
    )  # fmt: skip
    shutil.copyfile(os.path.join(args.work, "train_metrics.json"), os.path.join(docs, "pretrain-metrics.json"))
    print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=1))
    print(f"base written to {export_base(args.work, args.out)}")


if __name__ == "__main__":
    main()
