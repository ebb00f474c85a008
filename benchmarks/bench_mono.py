"""Mono calls: speaker separation, role detection and analysis against the stereo originals.

The generated stereo calls (Festival voices, synthetic text: ``tests/fixtures/dynamics``,
``tests/fixtures/consistency``, ``samples/calls``) are mixed down to one channel (mean of the
two channels, at the file's own rate), so the truth of who spoke when is the generator's
turn list (``<call>.json``). Calls are split by a fixed rule (sorted by id, alternating:
even positions ``dev``, odd ``test``); thresholds were chosen on ``dev`` only.

Measured per split:

* ``diarization``: diarization error rate (pyannote.metrics, 0.25 s collar, overlap scored)
  of :func:`pipeline.diarization.diarize` on the pipeline's VAD regions; speaker count on
  the mixes (2), on each stereo channel alone (1), and on the mixes followed by a stand-in
  third voice (3; :func:`with_transfer`).
* ``pipeline`` (``--pipeline``): the whole pipeline on the mono mixes and on the stereo files:
  role accuracy (the diarized speaker holding most of the agent's ground-truth speech is
  the one labelled ``agent``), WER (jiwer, on ``pipeline.evaluation.normalize_text`` words)
  of mono and stereo transcripts against the script, and scorecard agreement (checks with
  the same pass / fail / not-applicable result on mono and stereo).
* ``customer_first`` (``--pipeline``): role accuracy when one of the customer's own short
  turns is copied before the call, so the customer speaks first and only what the speakers
  say can tell the agent.
* ``cost``: diarization seconds per audio hour, one process, one onnxruntime thread.

Run::

    python benchmarks/bench_mono.py --split dev --pipeline --out benchmarks/results/mono-dev.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pipeline.diarization import DiarizationConfig, diarize  # noqa: E402
from pipeline.evaluation import normalize_text  # noqa: E402

SOURCES = ("tests/fixtures/dynamics", "tests/fixtures/consistency", "samples/calls")
COLLAR = 0.25
# Checks one channel cannot score (not applicable on mono by design: no overlap, no typing
# attributable to the agent's microphone).
MONO_NA_CHECKS = ("no_interruptions", "no_typing_over_customer")


def all_calls() -> list[tuple[str, str, dict[str, Any]]]:
    """``(call_id, audio path, ground truth)`` of every generated stereo call, sorted."""
    calls = []
    for src in SOURCES:
        for path in glob.glob(os.path.join(ROOT, src, "*.json")):
            truth = json.load(open(path, encoding="utf-8"))
            audio = os.path.join(os.path.dirname(path), truth["audio"])
            if "turns" in truth and os.path.isfile(audio):
                calls.append((truth["call_id"], audio, truth))
    return sorted(calls)


def split_of(calls: list[tuple[str, str, dict[str, Any]]]) -> dict[str, str]:
    return {c[0]: ("dev" if i % 2 == 0 else "test") for i, c in enumerate(calls)}


def mix_down(audio: str, out_dir: str) -> str:
    samples, rate = sf.read(audio, dtype="float32", always_2d=True)
    path = os.path.join(out_dir, os.path.basename(audio).rsplit(".", 1)[0] + ".flac")
    sf.write(path, samples.mean(axis=1), rate)
    return path


def customer_first(audio: str, truth: dict[str, Any], out_dir: str) -> tuple[str, dict]:
    """The mono mix with one of the customer's own short turns copied before the call, so the
    customer speaks first and only the text can tell the agent (ground truth shifted)."""
    samples, rate = sf.read(audio, dtype="float32", always_2d=True)
    turns = [t for t in truth["turns"] if t["speaker"] == "customer" and t["kind"] == "main"
             and t["end"] - t["start"] >= 0.8]
    turn = min(turns, key=lambda t: t["end"] - t["start"])
    channel = truth["channels"]["customer"]
    a, b = int((turn["start"] - 0.05) * rate), int((turn["end"] + 0.05) * rate)
    lead = np.concatenate([np.zeros(int(0.5 * rate)), samples[a:b, channel],
                           np.zeros(int(1.0 * rate))]).astype(np.float32)
    offset = len(lead) / rate
    mixed = np.concatenate([lead, samples.mean(axis=1)])
    path = os.path.join(out_dir, os.path.basename(audio).rsplit(".", 1)[0] + "-cf.flac")
    sf.write(path, mixed, rate)
    shifted = [{**t, "start": t["start"] + offset, "end": t["end"] + offset}
               for t in truth["turns"]]
    first = {**turn, "start": 0.55, "end": 0.55 + turn["end"] - turn["start"]}
    return path, {**truth, "turns": [first, *shifted], "duration": truth["duration"] + offset}


def with_transfer(samples: np.ndarray, other_agent: np.ndarray, index: int) -> np.ndarray:
    """The 16 kHz mono call followed by 1 s of silence and 25 s of another call's agent,
    resampled by 5/4 or 4/5 (pitch and pace shifted by about 4 semitones): a stand-in for a
    third voice (the generator has only two voices)."""
    from scipy.signal import resample_poly

    up, down = (5, 4) if index % 2 == 0 else (4, 5)
    third = resample_poly(other_agent[: 25 * 16000], up, down).astype(np.float32)
    return np.concatenate([samples, np.zeros(16000, dtype=np.float32), third])


def reference(truth: dict[str, Any]) -> Any:
    from pyannote.core import Annotation, Segment

    ref = Annotation()
    for i, t in enumerate(truth["turns"]):
        ref[Segment(t["start"], t["end"]), i] = t["speaker"]
    return ref


def hypothesis(turns: Any) -> Any:
    from pyannote.core import Annotation, Segment

    hyp = Annotation()
    for i, t in enumerate(turns):
        hyp[Segment(t.start, t.end), i] = f"spk{t.speaker}"
    return hyp


def evaluate_diarization(calls: list[tuple[str, str, dict[str, Any]]], mono_dir: str,
                         config: DiarizationConfig) -> dict[str, Any]:
    from pyannote.metrics.diarization import DiarizationErrorRate

    from pipeline.audio import load_call
    from pipeline.records import CallSpec
    from pipeline.vad import SileroVad

    vad = SileroVad()
    metric = DiarizationErrorRate(collar=2 * COLLAR, skip_overlap=False)  # collar: total width
    per_call = []
    audio_seconds = diar_seconds = 0.0
    agents = [load_call(CallSpec(c[0], c[1])).samples[c[2]["channels"]["agent"]] for c in calls]
    for i, (call_id, audio, truth) in enumerate(calls):
        call = load_call(CallSpec(call_id, mix_down(audio, mono_dir)))
        regions = vad(call.samples[0])
        started = time.perf_counter()
        n, turns = diarize(call.samples[0], regions, config)
        diar_seconds += time.perf_counter() - started
        audio_seconds += call.duration
        der = metric(reference(truth), hypothesis(turns))
        # One voice: each stereo channel alone should come out as one speaker.
        stereo = load_call(CallSpec(call_id, audio))
        single = [diarize(ch, vad(ch), config)[0] for ch in stereo.samples]
        # A transfer: a third voice after the call; it must come out as a speaker of its own.
        transfer = with_transfer(call.samples[0], agents[(i + 1) % len(agents)], i)
        n3, turns3 = diarize(transfer, vad(transfer), config)
        end = call.duration + 1.0
        third_ok = n3 == 3 and not (
            {t.speaker for t in turns3 if t.start >= end}
            & {t.speaker for t in turns3 if t.end <= end})
        truth_speakers = len({t["speaker"] for t in truth["turns"]})
        per_call.append({"call_id": call_id, "der": round(der, 4), "speakers": n,
                         "true_speakers": truth_speakers, "single_channel_speakers": single,
                         "transfer_speakers": n3, "transfer_third_voice_own_speaker": third_ok,
                         "uncertain_share": round(sum(t.end - t.start for t in turns
                                                      if t.uncertain) /
                                                  max(sum(t.end - t.start for t in turns), 1e-9),
                                                  4)})
    return {
        "calls": len(calls),
        "der": round(abs(metric), 4),  # pooled over calls, as pyannote reports it
        "der_mean_per_call": round(float(np.mean([c["der"] for c in per_call])), 4),
        "der_max_per_call": round(max(c["der"] for c in per_call), 4),
        "speaker_count_correct": sum(c["speakers"] == c["true_speakers"] for c in per_call),
        "single_channels": 2 * len(per_call),
        "single_channel_count_correct": sum(n == 1 for c in per_call
                                            for n in c["single_channel_speakers"]),
        "transfer_count_correct": sum(c["transfer_speakers"] == 3 for c in per_call),
        "transfer_third_voice_own_speaker": sum(c["transfer_third_voice_own_speaker"]
                                                for c in per_call),
        "cost_seconds_per_audio_hour_1_thread": round(3600 * diar_seconds / audio_seconds, 1),
        "audio_seconds": round(audio_seconds, 1),
        "per_call": per_call,
    }


def _agent_speaker_ok(truth: dict[str, Any], utterances: list[dict[str, Any]]) -> bool:
    """The utterances labelled agent hold more of the agent's ground-truth speech than the
    customer's."""
    def overlap(role_truth: str, role_hyp: str) -> float:
        total = 0.0
        for t in truth["turns"]:
            if t["speaker"] != role_truth:
                continue
            for u in utterances:
                if u["role"] == role_hyp:
                    total += max(0.0, min(t["end"], u["end"]) - max(t["start"], u["start"]))
        return total

    return overlap("agent", "agent") > overlap("customer", "agent")


def _check_results(checks: Any) -> dict[str, Any]:
    """Check -> result of a ``scorecards`` row (a list of structs; a JSON object before
    schema 2)."""
    if isinstance(checks, str):
        return json.loads(checks)
    return {c["check"]: c["result"] for c in checks}


def _run(specs_manifest: str, out_dir: str) -> dict[str, Any]:
    from pipeline.run import run

    started = time.perf_counter()
    result = run(specs_manifest, out_dir)
    return {"wall_seconds": round(time.perf_counter() - started, 1),
            "audio_seconds": result.audio_seconds}


def evaluate_pipeline(calls: list[tuple[str, str, dict[str, Any]]], work: str) -> dict[str, Any]:
    import jiwer

    from pipeline.sinks import read_table

    mono_dir = os.path.join(work, "mono_audio")
    os.makedirs(mono_dir, exist_ok=True)
    manifests = {"mono": os.path.join(work, "mono.jsonl"),
                 "stereo": os.path.join(work, "stereo.jsonl")}
    with open(manifests["mono"], "w") as fm, open(manifests["stereo"], "w") as fs:
        for call_id, audio, truth in calls:
            row = {"call_id": call_id, "agent_id": truth.get("agent_id")}
            fm.write(json.dumps({**row, "audio": mix_down(audio, mono_dir)}) + "\n")
            fs.write(json.dumps({**row, "audio": audio, "channels": truth["channels"]}) + "\n")
    runs = {k: _run(m, os.path.join(work, k)) for k, m in manifests.items()}
    tables = {k: {t: read_table(os.path.join(work, k), t).to_pylist()
                  for t in ("calls", "utterances", "scorecards")} for k in manifests}
    per_call = []
    refs, hyps = {"mono": [], "stereo": []}, {"mono": [], "stereo": []}
    agree = total = agree_measurable = total_measurable = 0
    for call_id, _, truth in calls:
        ref = " ".join(normalize_text(" ".join(t["text"] for t in truth["turns"])))
        row: dict[str, Any] = {"call_id": call_id}
        for kind in manifests:
            utts = sorted((u for u in tables[kind]["utterances"] if u["call_id"] == call_id),
                          key=lambda u: u["start"])
            refs[kind].append(ref)
            hyps[kind].append(" ".join(normalize_text(" ".join(u["text"] for u in utts))))
            if kind == "mono":
                row["role_ok"] = _agent_speaker_ok(truth, utts)
                summary = next(c for c in tables[kind]["calls"] if c["call_id"] == call_id)
                row.update({k: summary[k] for k in ("num_speakers", "role_method",
                                                    "role_confidence")})
        cards = {k: next((s for s in tables[k]["scorecards"] if s["call_id"] == call_id), None)
                 for k in manifests}
        if cards["mono"] and cards["stereo"]:
            mono_checks = _check_results(cards["mono"]["checks"])
            stereo_checks = _check_results(cards["stereo"]["checks"])
            same = [c for c in stereo_checks if mono_checks.get(c) == stereo_checks[c]]
            row["checks_same"] = len(same)
            row["checks_differ"] = sorted(set(stereo_checks) - set(same))
            agree += len(same)
            total += len(stereo_checks)
            measurable = [c for c in stereo_checks if c not in MONO_NA_CHECKS]
            agree_measurable += sum(c in same for c in measurable)
            total_measurable += len(measurable)
        per_call.append(row)
    return {
        "calls": len(calls),
        "role_accuracy": round(sum(r["role_ok"] for r in per_call) / len(per_call), 4),
        "speaker_count_two": sum(r["num_speakers"] == 2 for r in per_call),
        "role_methods": {m: sum(r["role_method"] == m for r in per_call)
                         for m in sorted({r["role_method"] for r in per_call}, key=str)},
        "wer_mono": round(jiwer.wer(refs["mono"], hyps["mono"]), 4),
        "wer_stereo": round(jiwer.wer(refs["stereo"], hyps["stereo"]), 4),
        "scorecard_checks_same": agree,
        "scorecard_checks": total,
        "scorecard_agreement": round(agree / total, 4) if total else None,
        "scorecard_checks_measurable_on_mono": total_measurable,
        "scorecard_checks_measurable_same": agree_measurable,
        "scorecard_agreement_measurable": round(agree_measurable / total_measurable, 4)
        if total_measurable else None,
        "runs": runs,
        "per_call": per_call,
    }


def evaluate_customer_first(calls: list[tuple[str, str, dict[str, Any]]],
                            work: str) -> dict[str, Any]:
    """Role detection when the customer speaks first (:func:`customer_first`)."""
    from pipeline.sinks import read_table

    audio_dir = os.path.join(work, "cf_audio")
    os.makedirs(audio_dir, exist_ok=True)
    manifest = os.path.join(work, "customer_first.jsonl")
    truths = {}
    with open(manifest, "w") as f:
        for call_id, audio, truth in calls:
            path, truths[call_id] = customer_first(audio, truth, audio_dir)
            f.write(json.dumps({"call_id": call_id, "audio": path}) + "\n")
    out = os.path.join(work, "customer_first")
    run_info = _run(manifest, out)
    summaries = {c["call_id"]: c for c in read_table(out, "calls").to_pylist()}
    utterances = read_table(out, "utterances").to_pylist()
    per_call = []
    for call_id, truth in truths.items():
        utts = [u for u in utterances if u["call_id"] == call_id]
        c = summaries[call_id]
        per_call.append({"call_id": call_id, "role_ok": _agent_speaker_ok(truth, utts),
                         "num_speakers": c["num_speakers"], "role_method": c["role_method"],
                         "role_confidence": c["role_confidence"]})
    return {
        "calls": len(per_call),
        "role_accuracy": round(sum(r["role_ok"] for r in per_call) / len(per_call), 4),
        "role_methods": {m: sum(r["role_method"] == m for r in per_call)
                         for m in sorted({r["role_method"] for r in per_call}, key=str)},
        "run": run_info,
        "per_call": per_call,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "test", "all"), default="dev")
    parser.add_argument("--pipeline", action="store_true", help="also run the whole pipeline")
    parser.add_argument("--out", help="write the results here (JSON)")
    parser.add_argument("--keep", help="work in this folder and keep the tables written")
    parser.add_argument("--set", action="append", default=[],
                        help="DiarizationConfig override, e.g. --set same_speaker_similarity=0.8")
    args = parser.parse_args(argv)
    overrides = {k: float(v) for k, v in (s.split("=", 1) for s in args.set)}
    config = DiarizationConfig(**overrides)  # type: ignore[arg-type]
    calls = all_calls()
    splits = split_of(calls)
    chosen = [c for c in calls if args.split == "all" or splits[c[0]] == args.split]
    with tempfile.TemporaryDirectory() as work:
        work = args.keep or work
        mono_dir = os.path.join(work, "mix")
        os.makedirs(mono_dir)
        result: dict[str, Any] = {
            "split": args.split,
            "data": "synthetic: Festival-voiced generated calls mixed to mono",
            "config_overrides": overrides,
            "diarization": evaluate_diarization(chosen, mono_dir, config),
        }
        if args.pipeline:
            result["pipeline"] = evaluate_pipeline(chosen, work)
            result["customer_first"] = evaluate_customer_first(chosen, work)
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    summary = {k: v for k, v in result["diarization"].items() if k != "per_call"}
    print(json.dumps(summary, indent=2))
    for part in ("pipeline", "customer_first"):
        if part in result:
            print(json.dumps({k: v for k, v in result[part].items() if k != "per_call"},
                             indent=2))


if __name__ == "__main__":
    main()
