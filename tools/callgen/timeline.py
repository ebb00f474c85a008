"""Lays a ``CallScript`` out in time, mixes the stereo audio and derives ground truth."""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from tools.callgen.render import SAMPLE_RATE, TurnRenderer
from tools.callgen.script import Backchannel, CallScript, Hold, Line, Pause, Speaker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MixConfig:
    """Levels and timing of the mix; the defaults give a clean but realistic phone call."""

    gap_range: tuple[float, float] = (0.3, 1.5)  # brief: realistic turn gaps 0.3-1.5 s
    lead_range: tuple[float, float] = (0.4, 0.9)  # silence before the first turn
    tail_s: float = 1.0  # silence after the last turn
    speech_peak: float = 0.35  # base speech peak (-9 dBFS) before per-call gain
    agent_gain_db: tuple[float, float] = (-5.0, 1.0)  # per-call level variation
    customer_gain_db: tuple[float, float] = (-6.0, 1.0)
    noise_floor_dbfs: tuple[float, float] = (-68.0, -62.0)  # brief: ~-65 dBFS, never digital 0
    music_dbfs: float = -24.0  # hold music RMS, clearly audible
    click_peak: tuple[float, float] = (0.04, 0.12)  # keystroke transient peak amplitude
    click_ms: tuple[float, float] = (5.0, 15.0)  # brief: 5-15 ms broadband transients
    click_interval_s: tuple[float, float] = (0.08, 0.25)  # brief: irregular 80-250 ms
    burst_s: tuple[float, float] = (1.0, 4.0)  # brief: typing bursts of 1-4 s
    non_talk_min_s: float = 3.0  # product rule: non-talk is both channels silent >= 3 s


@dataclass
class _Placed:
    speaker: Speaker
    text: str
    labels: tuple[str, ...]
    start: float
    audio: np.ndarray
    gain_db: float
    kind: str  # main | backchannel | hold_update
    tempo: float = 1.0
    venting: bool = False
    turn_id: str = ""

    @property
    def end(self) -> float:
        return self.start + len(self.audio) / SAMPLE_RATE


def _call_rng(seed: int, call_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(call_id.encode())])


def _typing_bursts(
    rng: np.random.Generator, start: float, end: float, cfg: MixConfig
) -> list[list[float]]:
    """Returns click times grouped in bursts that fit inside [start, end]."""
    bursts: list[list[float]] = []
    t = start
    while end - t >= cfg.burst_s[0]:
        length = min(float(rng.uniform(*cfg.burst_s)), end - t)
        clicks = [t]
        while True:
            nxt = clicks[-1] + float(rng.uniform(*cfg.click_interval_s))
            if nxt > t + length - cfg.click_ms[1] / 1000:
                break
            clicks.append(nxt)
        bursts.append(clicks)
        t = t + length + float(rng.uniform(0.4, 1.2))
    return bursts


def _click(rng: np.random.Generator, cfg: MixConfig) -> np.ndarray:
    n = int(rng.uniform(*cfg.click_ms) / 1000 * SAMPLE_RATE)
    noise = np.diff(rng.standard_normal(n + 1))  # first difference tilts it bright
    env = np.exp(-np.arange(n) / (n / 4))
    click = noise * env
    return (click / np.max(np.abs(click)) * rng.uniform(*cfg.click_peak)).astype(np.float32)


def _hold_music(rng: np.random.Generator, seconds: float, cfg: MixConfig) -> np.ndarray:
    """A simple looping two-voice tune (sine melody over a soft chord)."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    notes = np.array([0, 4, 7, 12, 7, 4, 2, 5, 9, 5]) + int(rng.integers(-3, 3))
    note_s = 0.4
    idx = (t // note_s).astype(int) % len(notes)
    freq = 440.0 * 2 ** ((notes[idx] - 9) / 12)
    phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE
    note_pos = (t % note_s) / note_s
    melody = np.sin(phase) * np.minimum(1.0, note_pos * 20) * (1 - 0.6 * note_pos)
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    music = 0.7 * melody + 0.3 * chord
    fade = min(n // 2, int(0.05 * SAMPLE_RATE))
    if fade:
        ramp = np.linspace(0, 1, fade)
        music[:fade] *= ramp
        music[n - fade :] *= ramp[::-1]
    rms = np.sqrt(np.mean(music**2) + 1e-12)
    return (music / rms * 10 ** (cfg.music_dbfs / 20)).astype(np.float32)


def layout(
    script: CallScript,
    renderer: TurnRenderer,
    out_dir: Path,
    seed: int,
    cfg: MixConfig | None = None,
) -> dict[str, Any]:
    """Renders ``script`` to ``out_dir/CALLID.flac`` and writes ``CALLID.json``.

    Args:
        script: The scripted call.
        renderer: Festival renderer (with its cache).
        out_dir: Output directory.
        seed: Set seed; each call derives its own generator from (seed, call_id).
        cfg: Mix configuration.

    Returns:
        The ground-truth dict that was written.

    Raises:
        ValueError: If the script cannot be laid out (e.g. an interruption before any turn).
    """
    cfg = cfg or MixConfig()
    rng = _call_rng(seed, script.call_id)
    voice = {"agent": script.agent_voice, "customer": script.customer_voice}
    placed: list[_Placed] = []
    overlaps: list[dict[str, Any]] = []
    typing_bursts: list[list[float]] = []
    music_spans: list[tuple[float, float]] = []
    holds: list[dict[str, Any]] = []
    cursor = float(rng.uniform(*cfg.lead_range))
    pending_gap: float | None = 0.0
    last_main: _Placed | None = None

    for ev in script.events:
        if isinstance(ev, Line):
            audio = renderer.render(voice[ev.speaker], ev.text, ev.tempo)
            if ev.interrupt is not None:
                if last_main is None or last_main.speaker == ev.speaker:
                    raise ValueError(f"{script.call_id}: interruption needs another speaker first")
                start = max(last_main.start + 0.5, last_main.end - ev.interrupt)
            else:
                gap = pending_gap if pending_gap is not None else ev.gap
                if gap is None:
                    gap = float(rng.uniform(*cfg.gap_range))
                start = cursor + gap
            pending_gap = None
            turn = _Placed(
                ev.speaker,
                ev.text,
                ev.labels,
                start,
                audio,
                ev.gain_db,
                "main",
                ev.tempo,
                ev.venting,
            )
            if ev.interrupt is not None and last_main is not None:
                overlaps.append(
                    {
                        "start": start,
                        "end": last_main.end,
                        "interrupter": ev.speaker,
                        "interrupted": last_main.speaker,
                        "kind": "interruption",
                        "_turns": (turn, last_main),
                    }
                )
            if ev.typing:
                typing_bursts += _typing_bursts(rng, turn.start + 0.3, turn.end - 0.3, cfg)
            placed.append(turn)
            last_main = turn
            cursor = max(cursor, turn.end)
        elif isinstance(ev, Backchannel):
            if last_main is None or last_main.speaker == ev.speaker:
                raise ValueError(f"{script.call_id}: backchannel needs another speaker's turn")
            audio = renderer.render(voice[ev.speaker], ev.text)
            dur = len(audio) / SAMPLE_RATE
            host = last_main
            start = host.start + ev.at * (host.end - host.start)
            start = min(start, host.end - dur - 0.15)
            if start < host.start + 0.3:
                raise ValueError(f"{script.call_id}: turn {host.text!r} too short to backchannel")
            bc = _Placed(ev.speaker, ev.text, (), start, audio, -3.0, "backchannel")
            placed.append(bc)
            overlaps.append(
                {
                    "start": start,
                    "end": bc.end,
                    "interrupter": ev.speaker,
                    "interrupted": host.speaker,
                    "kind": "backchannel",
                    "_turns": (bc, host),
                }
            )
        elif isinstance(ev, Pause):
            if ev.typing:
                typing_bursts += _typing_bursts(rng, cursor + 0.4, cursor + ev.seconds - 0.4, cfg)
            pending_gap = ev.seconds
        elif isinstance(ev, Hold):
            hold_start = cursor + float(rng.uniform(0.3, 0.8))
            t = hold_start
            elapsed = 0.0
            updates: list[dict[str, float]] = []
            for upd in ev.updates:
                seg = upd.after - elapsed
                if ev.music:
                    music_spans.append((t, t + seg))
                audio = renderer.render(voice["agent"], upd.text)
                u = _Placed(
                    "agent", upd.text, ("hold_update",), t + seg + 0.2, audio, 0.0, "hold_update"
                )
                placed.append(u)
                updates.append({"start": u.start, "end": u.end})
                t = u.end + 0.4
                elapsed = upd.after
            seg = ev.seconds - elapsed
            if ev.music:
                music_spans.append((t, t + seg))
            hold_end = t + seg
            holds.append(
                {
                    "start": round(hold_start, 3),
                    "end": round(hold_end, 3),
                    "with_music": ev.music,
                    "permission_asked": ev.permission_asked,
                    "customer_agreed": ev.customer_agreed,
                    "status_updates": [{k: round(v, 3) for k, v in u.items()} for u in updates],
                }
            )
            cursor = hold_end
            pending_gap = 0.0  # the agent's return ends the hold
        else:  # pragma: no cover - exhaustive over Event
            raise TypeError(f"unknown event {ev!r}")

    duration = cursor + cfg.tail_s
    n = int(np.ceil(duration * SAMPLE_RATE))
    chans = {"agent": np.zeros(n, np.float32), "customer": np.zeros(n, np.float32)}
    gains = {
        "agent": float(rng.uniform(*cfg.agent_gain_db)),
        "customer": float(rng.uniform(*cfg.customer_gain_db)),
    }
    for p in placed:
        i = round(p.start * SAMPLE_RATE)
        g = cfg.speech_peak * 10 ** ((gains[p.speaker] + p.gain_db) / 20) / 0.5
        chans[p.speaker][i : i + len(p.audio)] += p.audio * g
    for a, b in music_spans:
        i = round(a * SAMPLE_RATE)
        m = _hold_music(rng, b - a, cfg)
        chans["agent"][i : i + len(m)] += m
    typing: list[dict[str, float]] = []
    for clicks in typing_bursts:
        end = clicks[0]
        for c in clicks:
            k = _click(rng, cfg)
            i = round(c * SAMPLE_RATE)
            chans["agent"][i : i + len(k)] += k
            end = c + len(k) / SAMPLE_RATE
        typing.append({"start": round(clicks[0], 3), "end": round(end, 3), "clicks": len(clicks)})
    noise_db = {}
    for name, ch in chans.items():
        noise_db[name] = float(rng.uniform(*cfg.noise_floor_dbfs))
        ch += (rng.standard_normal(n) * 10 ** (noise_db[name] / 20)).astype(np.float32)
        peak = float(np.max(np.abs(ch)))
        if peak > 0.98:
            ch *= 0.98 / peak
            logger.warning("%s: %s channel limited (peak %.2f)", script.call_id, name, peak)

    placed.sort(key=lambda p: p.start)
    for i, p in enumerate(placed):
        p.turn_id = f"{script.call_id}/t{i:03d}"
    turns = [
        {
            "turn_id": p.turn_id,
            "speaker": p.speaker,
            "text": p.text,
            "start": round(p.start, 3),
            "end": round(p.end, 3),
            "labels": list(p.labels),
            "kind": p.kind,
        }
        for p in placed
    ]

    intervals = sorted((p.start, p.end) for p in placed)
    non_talk = []
    t = 0.0
    for a, b in [*intervals, (duration, duration)]:
        if a - t >= cfg.non_talk_min_s:
            hold_overlap = any(h["start"] < a and h["end"] > t for h in holds)
            non_talk.append({"start": round(t, 3), "end": round(a, 3), "during_hold": hold_overlap})
        t = max(t, b)

    venting = []
    run: list[_Placed] = []
    for q in [*(p for p in placed if p.kind == "main"), None]:
        if q is not None and q.venting:
            run.append(q)
        elif run:
            venting.append(
                {
                    "start": round(run[0].start, 3),
                    "end": round(run[-1].end, 3),
                    "turn_ids": [r.turn_id for r in run],
                }
            )
            run = []
    mains = [p for p in placed if p.kind == "main"]

    agent_turns = [p for p in mains if p.speaker == "agent"]
    agent_words = sum(len(p.text.split()) for p in agent_turns)
    agent_secs = sum(p.end - p.start for p in agent_turns)
    rushed = [
        {
            "turn_id": p.turn_id,
            "tempo": p.tempo,
            "words_per_second": round(len(p.text.split()) / (p.end - p.start), 2),
        }
        for p in agent_turns
        if p.tempo > 1.0
    ]
    overlaps_out = []
    for o in sorted(overlaps, key=lambda o: o["start"]):
        by, host = o.pop("_turns")
        o.update(
            {
                "start": round(o["start"], 3),
                "end": round(o["end"], 3),
                "interrupter_turn_id": by.turn_id,
                "interrupted_turn_id": host.turn_id,
            }
        )
        overlaps_out.append(o)

    channels = {"agent": 1, "customer": 0} if script.swap_channels else {"agent": 0, "customer": 1}
    stereo = np.zeros((n, 2), np.float32)
    stereo[:, channels["agent"]] = chans["agent"]
    stereo[:, channels["customer"]] = chans["customer"]
    out_dir.mkdir(parents=True, exist_ok=True)
    audio_name = f"{script.call_id}.flac"
    sf.write(out_dir / audio_name, stereo, SAMPLE_RATE, subtype="PCM_16", format="FLAC")

    truth: dict[str, Any] = {
        "call_id": script.call_id,
        "agent_id": script.agent_id,
        "domain": script.domain,
        "audio": audio_name,
        "sample_rate": SAMPLE_RATE,
        "channels": channels,
        "duration": round(n / SAMPLE_RATE, 3),
        "voices": voice,
        "levels_db": {
            "agent_gain": round(gains["agent"], 2),
            "customer_gain": round(gains["customer"], 2),
            "agent_noise_floor_dbfs": round(noise_db["agent"], 2),
            "customer_noise_floor_dbfs": round(noise_db["customer"], 2),
        },
        "greeting": script.greeting,
        "turns": turns,
        "holds": holds,
        "hold_music": [{"start": round(a, 3), "end": round(b, 3)} for a, b in music_spans],
        "overlaps": overlaps_out,
        "non_talk": non_talk,
        "typing": typing,
        "venting": venting,
        "agent_pace": {
            "mean_words_per_second": round(agent_words / agent_secs, 2) if agent_secs else 0.0,
            "rushed_turns": rushed,
        },
    }
    (out_dir / f"{script.call_id}.json").write_text(json.dumps(truth, indent=1) + "\n")
    logger.info("wrote %s (%.1f s, %d turns)", audio_name, duration, len(turns))
    return truth
