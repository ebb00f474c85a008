"""The ASR stage in Beam: one channel in, its words out, the backend loaded once per worker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.asr import AsrBackend, AsrConfig, create_backend
from pipeline.deadletter import DEAD_LETTER, StageFn
from pipeline.records import ChannelAudio, ChannelTranscript


class TranscribeFn(StageFn):
    """Recognise the speech of one channel; the backend loads once per worker."""

    stage = "asr"

    def __init__(self, config: AsrConfig):
        super().__init__()
        self.config = config
        self.backend: AsrBackend | None = None
        self.audio_seconds = Metrics.counter("callscope", "asr_audio_seconds")

    def setup(self) -> None:
        self.backend = create_backend(self.config)

    def run(self, element: ChannelAudio) -> Iterator[ChannelTranscript]:
        assert self.backend is not None
        started = time.perf_counter()
        words = self.backend.transcribe(element.samples, element.sample_rate, element.regions)
        elapsed = time.perf_counter() - started
        self.audio_seconds.inc(int(element.duration))
        yield ChannelTranscript(
            call_id=element.call_id,
            channel=element.channel,
            role=element.role,
            regions=element.regions,
            words=tuple(words),
            acoustics=element.acoustics,
            processing_seconds=element.processing_seconds + elapsed,
        )


class Transcribe(beam.PTransform):
    """ChannelAudio (with regions) -> ChannelTranscript (main), DeadLetter (``dead_letter``)."""

    def __init__(self, config: AsrConfig | None = None):
        super().__init__()
        self.config = config or AsrConfig()

    def expand(self, channels: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        label = "Whisper" if self.config.backend == "whisper" else "Riva"
        return channels | label >> beam.ParDo(TranscribeFn(self.config)).with_outputs(
            DEAD_LETTER, main="transcripts"
        )
