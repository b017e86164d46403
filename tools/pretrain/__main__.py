"""``python -m tools.pretrain``: synthesise -> prepare -> train -> write ``mm_browserfft/assets/base/``.

Run from the repository root. Every stage is seeded; the synthetic clips and the
prepared arrays live in the work folder (``--work``, outside the repository), and
the synthesis step resumes when clips are already there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from typing import Sequence

from . import prepare, synth, train

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
    parser.add_argument("--data", default=os.path.join(_REPO, "..", "shared", "data"), help="Speech Commands subset")
    parser.add_argument("--work", default="/work/pretrain_work", help="scratch folder outside the repository")
    parser.add_argument("--clips-per-word", type=int, default=24, help="synthetic clips per word")
    parser.add_argument("--real-copies", type=int, default=8, help="augmented copies of each real clip")
    parser.add_argument("--synth-copies", type=int, default=3, help="augmented copies of each synthetic clip")
    parser.add_argument("--epochs", type=int, default=26, help="training epochs (0: fit --minutes)")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget of training with --epochs 0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(_REPO, "mm_browserfft", "assets", "base"))
    args = parser.parse_args(argv)

    counts = synth.synthesize_vocabulary(
        os.path.join(args.work, "synth"), clips_per_word=args.clips_per_word, seed=args.seed
    )
    print(f"synth: {sum(counts.values())} clips of {len(counts)} words")
    sizes = prepare.prepare(
        args.data, args.work, real_copies=args.real_copies, synth_copies=args.synth_copies, seed=args.seed
    )
    print(f"prepare: {sizes}")
    docs = os.path.join(_REPO, "docs")
    metrics = train.train(
        args.work, minutes=args.minutes, epochs=args.epochs, seed=args.seed,
        curves_png=os.path.join(docs, "images", "pretrain-curves.png"),
    )  # fmt: skip
    shutil.copyfile(os.path.join(args.work, "train_metrics.json"), os.path.join(docs, "pretrain-metrics.json"))
    print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=1))
    print(f"base written to {export_base(args.work, args.out)}")


if __name__ == "__main__":
    main()
