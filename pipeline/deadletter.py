"""Dead-letter routing shared by every stage: a failure becomes a row, never a crashed run.

A stage's DoFn subclasses :class:`StageFn` and implements ``run``; any exception raised for an
element is counted, logged and emitted on the ``dead_letter`` output as a
:class:`~pipeline.records.DeadLetter` with the stage name, the error code and the message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from pipeline.records import DeadLetter

logger = logging.getLogger(__name__)

DEAD_LETTER = "dead_letter"


def dead_letter_for(element: Any, stage: str, error: BaseException) -> DeadLetter:
    """The dead-letter row of ``element`` failing in ``stage`` with ``error``."""
    call_id = getattr(element, "call_id", None)
    if call_id is None and isinstance(element, tuple) and element:
        call_id = str(element[0])
    return DeadLetter(
        call_id=str(call_id if call_id is not None else element)[:200],
        stage=stage,
        error_type=getattr(error, "code", type(error).__name__),
        message=str(error) or type(error).__name__,
        audio=str(
            getattr(element, "audio", None) or getattr(getattr(element, "spec", None), "audio", "")
            or ""
        ),
    )


class StageFn(beam.DoFn):
    """A DoFn whose failures go to the ``dead_letter`` output.

    Subclasses set ``stage`` and implement ``run(element)``, yielding outputs.
    """

    stage = "stage"

    def __init__(self) -> None:
        super().__init__()
        self.failed = Metrics.counter("callscope", f"{self.stage}_failed")
        self.processed = Metrics.counter("callscope", f"{self.stage}_processed")

    def run(self, element: Any) -> Iterator[Any]:
        raise NotImplementedError

    def process(self, element: Any) -> Iterator[Any]:
        try:
            outputs = list(self.run(element))
        except Exception as e:
            self.failed.inc()
            dead = dead_letter_for(element, self.stage, e)
            logger.warning("%s failed for %s: %s: %s", self.stage, dead.call_id, dead.error_type,
                           dead.message)
            yield TaggedOutput(DEAD_LETTER, dead)
            return
        self.processed.inc()
        yield from outputs
