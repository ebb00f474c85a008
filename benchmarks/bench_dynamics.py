"""Precision and recall of the conversation-dynamics detectors against generated calls.

Runs over the generator's ground truth (``tests/fixtures/dynamics/*.json`` next to the
``.flac`` calls) on two paths:

- ``oracle``: speech regions and words from the ground-truth turns (words spread evenly over
  each turn), acoustics from the real audio. Measures the detectors alone.
- ``real``: Silero VAD regions and Whisper tiny.en words from the audio, as in the pipeline.

Usage::

    .venv/bin/python benchmarks/bench_dynamics.py [--path real|oracle|both] [--dir DIR]

A detected event matches a ground-truth event of the same kind (and actor, where it has one)
when their spans overlap (with ``TOLERANCE`` seconds of slack); each truth event matches at
most one detection.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.acoustics import AcousticsConfig, analyze_channel  # noqa: E402
from pipeline.audio import load_call  # noqa: E402
from pipeline.dynamics import DynamicsConfig, analyze_call  # noqa: E402
from pipeline.records import (  # noqa: E402
    AGENT,
    CUSTOMER,
    CallHeader,
    CallSpec,
    CallTranscript,
    ChannelTranscript,
    Event,
    SpeechRegion,
    Word,
)
from pipeline.utterances import build_utterances  # noqa: E402

logger = logging.getLogger(__name__)

FIXTURES = ROOT / "tests" / "fixtures" / "dynamics"
TOLERANCE = 0.5
"""Seconds of slack when matching spans (VAD padding and hangover)."""


def load_truths(directory: Path = FIXTURES) -> list[dict[str, Any]]:
    """Ground truths of the generated calls in ``directory``, sorted by call id."""
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def _spec(truth: dict[str, Any], directory: Path) -> CallSpec:
    return CallSpec(
        call_id=truth["call_id"],
        audio=str(directory / truth["audio"]),
        agent_channel=truth["channels"]["agent"],
        customer_channel=truth["channels"]["customer"],
    )


def oracle_words(turn: dict[str, Any]) -> list[Word]:
    """The turn's words spread evenly over its span (punctuation kept)."""
    tokens = turn["text"].split()
    step = (turn["end"] - turn["start"]) / max(len(tokens), 1)
    return [
        Word(turn["start"] + i * step, turn["start"] + (i + 1) * step, tok, 1.0)
        for i, tok in enumerate(tokens)
    ]


def transcribe_call(
    truth: dict[str, Any],
    directory: Path = FIXTURES,
    mode: str = "real",
    vad: Any = None,
    asr: Any = None,
    acoustics_config: AcousticsConfig | None = None,
) -> CallTranscript:
    """Builds a CallTranscript of a generated call.

    Args:
        truth: The call's ground truth.
        directory: Where its audio lies.
        mode: ``oracle`` (regions and words from the truth) or ``real`` (``vad`` regions;
            ``asr`` words when an ASR backend is given, else oracle words).
        vad: A ``pipeline.vad.SileroVad`` (``real`` mode).
        asr: An ASR backend with ``transcribe(samples, rate, regions)``, or None.
        acoustics_config: Options of the acoustic analysis.

    Returns:
        The transcript with acoustics on each channel.
    """
    audio = load_call(_spec(truth, directory))
    channels = []
    for index in range(audio.num_channels):
        role = audio.role_of(index)
        samples = audio.samples[index]
        turns = [t for t in truth["turns"] if t["speaker"] == role]
        if mode == "oracle":
            regions = [SpeechRegion(t["start"], t["end"]) for t in turns]
        else:
            regions = list(vad(samples))
        if asr is not None and mode == "real":
            words = list(asr.transcribe(samples, audio.sample_rate, regions))
        else:
            words = [w for t in turns for w in oracle_words(t)]
        ac = analyze_channel(samples, audio.sample_rate, regions, acoustics_config)
        channels.append(
            ChannelTranscript(
                audio.call_id, index, role, tuple(regions), tuple(sorted(words, key=_start)), ac
            )
        )
    header = CallHeader(
        spec=audio.spec,
        duration=audio.duration,
        num_channels=audio.num_channels,
        sample_rate=audio.sample_rate,
        source_sample_rate=audio.source_sample_rate,
        source_format=audio.source_format,
        warnings=audio.warnings,
    )
    return CallTranscript(
        header=header,
        channels=tuple(channels),
        utterances=build_utterances(audio.call_id, channels),
    )


def _start(w: Word) -> float:
    return w.start


@dataclass
class Score:
    """Matches of one detector over a set of calls."""

    truth: int = 0
    detected: int = 0
    matched_truth: int = 0
    matched_detected: int = 0
    ious: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.matched_detected / self.detected if self.detected else None

    @property
    def recall(self) -> float | None:
        return self.matched_truth / self.truth if self.truth else None

    def row(self) -> dict[str, Any]:
        return {
            "truth": self.truth,
            "detected": self.detected,
            "precision": None if self.precision is None else round(self.precision, 3),
            "recall": None if self.recall is None else round(self.recall, 3),
            "mean_iou": round(float(np.mean(self.ious)), 3) if self.ious else None,
        }


def _hit(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] + TOLERANCE and b[0] < a[1] + TOLERANCE


def match(
    truth: Sequence[tuple[float, float]], detected: Sequence[tuple[float, float]], score: Score
) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of overlapping spans; updates ``score``."""
    score.truth += len(truth)
    score.detected += len(detected)
    pairs = []
    used: set[int] = set()
    for i, t in enumerate(truth):
        for j, d in enumerate(detected):
            if j not in used and _hit(t, d):
                used.add(j)
                pairs.append((i, j))
                inter = max(0.0, min(t[1], d[1]) - max(t[0], d[0]))
                union = max(t[1], d[1]) - min(t[0], d[0])
                score.ious.append(inter / union if union > 0 else 0.0)
                break
    score.matched_truth += len(pairs)
    score.matched_detected += len({j for _, j in pairs})
    return pairs


def evaluate(
    truth: dict[str, Any], events: Sequence[Event], scores: dict[str, Score], checks: dict
) -> None:
    """Scores one call's events against its ground truth (accumulating)."""

    def spans(kind: str, actor: str | None = None) -> list[tuple[float, float]]:
        return [
            (e.start, e.end)
            for e in events
            if e.type == kind and (actor is None or e.actor == actor)
        ]

    for kind in ("interruption", "backchannel"):
        for actor in (AGENT, CUSTOMER):
            t = [
                (o["start"], o["end"])
                for o in truth["overlaps"]
                if o["kind"] == kind and o["interrupter"] == actor
            ]
            match(t, spans(kind, actor), scores.setdefault(kind, Score()))
    match(
        [(n["start"], n["end"]) for n in truth["non_talk"]],
        spans("non_talk"),
        scores.setdefault("non_talk", Score()),
    )
    holds = [e for e in events if e.type == "hold"]
    pairs = match(
        [(h["start"], h["end"]) for h in truth["holds"]],
        [(e.start, e.end) for e in holds],
        scores.setdefault("hold", Score()),
    )
    for i, j in pairs:
        t, attrs = truth["holds"][i], json.loads(holds[j].attributes)
        over = not t["status_updates"] and t["end"] - t["start"] > 30.0
        for key, want, got in (
            ("hold_permission_asked", t["permission_asked"], attrs["permission_asked"]),
            ("hold_customer_agreed", t["customer_agreed"], attrs["customer_agreed"]),
            ("hold_over_30s_without_update", over, attrs["over_limit_without_update"]),
            ("hold_updates", len(t["status_updates"]), attrs["updates"]),
            ("hold_music", t["with_music"], attrs["music"]),
        ):
            checks.setdefault(key, []).append(want == got)
    match(
        [(x["start"], x["end"]) for x in truth["typing"]],
        spans("typing"),
        scores.setdefault("typing", Score()),
    )
    match(
        [(v["start"], v["end"]) for v in truth["venting"]],
        spans("venting"),
        scores.setdefault("venting", Score()),
    )
    turns = {t["turn_id"]: t for t in truth["turns"]}
    match(
        [
            (turns[r["turn_id"]]["start"], turns[r["turn_id"]]["end"])
            for r in truth["agent_pace"]["rushed_turns"]
        ],
        spans("fast_pace"),
        scores.setdefault("fast_pace", Score()),
    )


def pace_ratios(
    truth: dict[str, Any], call: CallTranscript, config: DynamicsConfig | None = None
) -> tuple[list[float], list[float]]:
    """Rate ratios of the agent utterances the pace detector judges, rushed and normal.

    Runs the detector with its ratio and wpm floor off, so every agent utterance with
    ``fast_pace_min_words`` words reports its ``rate_ratio``; an utterance is rushed when it
    overlaps a ground-truth rushed turn. Shows the margin around ``fast_pace_ratio``.
    """
    config = replace(config or DynamicsConfig(), fast_pace_ratio=0.0, fast_pace_min_wpm=0.0)
    turns = {t["turn_id"]: t for t in truth["turns"]}
    rushed = [turns[r["turn_id"]] for r in truth["agent_pace"]["rushed_turns"]]
    pos: list[float] = []
    neg: list[float] = []
    for e in analyze_call(call, config).events:
        if e.type != "fast_pace":
            continue
        ratio = json.loads(e.attributes)["rate_ratio"]
        hit = any(_hit((t["start"], t["end"]), (e.start, e.end)) for t in rushed)
        (pos if hit else neg).append(ratio)
    return pos, neg


def run_path(
    truths: Sequence[dict[str, Any]],
    mode: str,
    directory: Path = FIXTURES,
    use_asr: bool = True,
    config: DynamicsConfig | None = None,
) -> tuple[dict[str, Score], dict[str, list[bool]], float]:
    """Runs and scores one path over ``truths``; returns scores, checks and seconds taken."""
    vad = asr = None
    if mode == "real":
        from pipeline.vad import SileroVad

        vad = SileroVad()
        if use_asr:
            from pipeline.asr import AsrConfig, create_backend

            asr = create_backend(AsrConfig())
    scores: dict[str, Score] = {}
    checks: dict[str, list[bool]] = {}
    ratios: dict[str, list[float]] = {"rushed": [], "normal": []}
    t0 = time.time()
    for truth in truths:
        call = transcribe_call(truth, directory, mode, vad, asr)
        result = analyze_call(call, config)
        evaluate(truth, result.events, scores, checks)
        pos, neg = pace_ratios(truth, call, config)
        ratios["rushed"] += pos
        ratios["normal"] += neg
    return scores, checks, ratios, time.time() - t0


def report(
    name: str,
    scores: dict[str, Score],
    checks: dict[str, list[bool]],
    ratios: dict[str, list[float]] | None = None,
) -> str:
    """Markdown table of one path's scores (and the pace detector's rate-ratio margin)."""
    lines = [
        f"### {name}",
        "",
        "| detector | truth | detected | precision | recall | mean IoU |",
        "|---|---|---|---|---|---|",
    ]
    for kind, s in scores.items():
        r = s.row()
        lines.append(
            f"| {kind} | {r['truth']} | {r['detected']} | {r['precision']} | {r['recall']} "
            f"| {r['mean_iou']} |"
        )
    lines += ["", "| hold attribute (matched holds) | correct | accuracy |", "|---|---|---|"]
    for key, vals in checks.items():
        lines.append(f"| {key} | {sum(vals)}/{len(vals)} | {sum(vals) / len(vals):.2f} |")
    if ratios:
        rushed, normal = sorted(ratios["rushed"]), sorted(ratios["normal"])
        lines += [
            "",
            f"pace rate ratio (syllables/s over the agent's baseline): rushed utterances "
            f"{rushed}; normal utterances n={len(normal)}, highest {normal[-5:]}",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=("real", "oracle", "both"), default="both")
    parser.add_argument("--dir", type=Path, default=FIXTURES)
    parser.add_argument("--no-asr", action="store_true", help="real VAD with oracle words")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    truths = load_truths(args.dir)
    modes = ("oracle", "real") if args.path == "both" else (args.path,)
    for mode in modes:
        scores, checks, ratios, secs = run_path(truths, mode, args.dir, use_asr=not args.no_asr)
        print(report(f"{mode} path, {len(truths)} calls ({secs:.0f} s)", scores, checks, ratios))
        print()


if __name__ == "__main__":
    main()
