"""Where everything of one fusion ``work_dir`` lives: the only place its layout is spelled.

    corpus/                  the pre-split rows every model is extracted from
    stores/<model>/          each model's top-k store
    align/<source>/          DTW paths, pair counts and the vocabulary map of one source
    align/report.json        how the fused store was made
    align/strength.json      the strength check: bits per byte per model and corpus group
    fused/                   the fused-targets store training reads
    train/                   checkpoints, log and final model of the fusion training
    control/                 the same training with lambda_clm = 1 (evaluate section)
    train-seed-<s>/          evaluate.seeds: the fusion training at seed s (a seed equal to
    control-seed-<s>/        train.seed stays in train/ and control/, as a one-seed run)
    eval/<label>/            evaluation run directories: base, clm-only, fused, each source;
                             other seeds: fused-seed-<s>, clm-only-seed-<s>
    report/                  compare.md|json|html, model-card.md, strengths.md, status.json,
                             strength-check.md
    pairs/<source>/          FuseChat: one pair's own work_dir (corpus and stores linked)
    merged/                  FuseChat: the merged pair targets
    stages/<n>/              EEVE: one stage's training run
    configs/                 configs the pipeline derived and wrote (FuseChat extraction)

As ``reports/rundir.py`` owns an evaluation run directory, this class owns a work_dir:
modules ask it for paths instead of joining string literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WorkDir:
    """The layout of one work_dir (paths only: nothing is created here)."""

    root: Path

    def __init__(self, root: Path | str) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def stores(self) -> Path:
        return self.root / "stores"

    def store(self, model: str) -> Path:
        return self.stores / model

    @property
    def align(self) -> Path:
        return self.root / "align"

    def alignments(self, source: str) -> Path:
        return self.align / source

    @property
    def align_report(self) -> Path:
        return self.align / "report.json"

    @property
    def align_strength(self) -> Path:
        return self.align / "strength.json"

    @property
    def fused(self) -> Path:
        return self.root / "fused"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def control(self) -> Path:
        return self.root / "control"

    def seed_train(self, seed: int) -> Path:
        """The fusion training at a seed other than ``train.seed`` (``fusion/seeds.py``)."""
        return self.root / f"train-seed-{seed}"

    def seed_control(self, seed: int) -> Path:
        return self.root / f"control-seed-{seed}"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    def eval_run(self, label: str) -> Path:
        return self.eval / label

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def compare_md(self) -> Path:
        return self.report / "compare.md"

    @property
    def compare_json(self) -> Path:
        return self.report / "compare.json"

    @property
    def compare_html(self) -> Path:
        return self.report / "compare.html"

    @property
    def forest_svg(self) -> Path:
        """The fused - clm-only forest plot compare.md shows (compare.html embeds it)."""
        return self.report / "forest.svg"

    @property
    def model_card(self) -> Path:
        return self.report / "model-card.md"

    @property
    def strengths(self) -> Path:
        return self.report / "strengths.md"

    @property
    def strength_check(self) -> Path:
        return self.report / "strength-check.md"

    @property
    def contamination_json(self) -> Path:
        """The contamination check ``fuse run`` makes before extraction (with its cache key)."""
        return self.report / "contamination.json"

    @property
    def contamination_md(self) -> Path:
        return self.report / "contamination.md"

    @property
    def report_status(self) -> Path:
        return self.report / "status.json"

    @property
    def pairs(self) -> Path:
        return self.root / "pairs"

    def pair(self, source: str) -> WorkDir:
        return WorkDir(self.pairs / source)

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    def stage(self, number: int) -> Path:
        return self.stages / str(number)

    @property
    def configs(self) -> Path:
        return self.root / "configs"
