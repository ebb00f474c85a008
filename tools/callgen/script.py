"""The scripted-dialogue model: what a call says and does, before timing.

A ``CallScript`` is an ordered list of events. ``Line`` is a main turn;
``Backchannel`` is a short reply laid over the previous main turn; ``Pause``
is an explicit gap (optionally with keyboard typing); ``Hold`` puts the
customer on hold. ``timeline.layout`` turns a script into timed audio and
ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from models.utterance_classifier.labels import LABELS

Speaker = Literal["agent", "customer"]

# The generator writes the classifier's labels on each turn: one inventory for both.
QA_LABELS: tuple[str, ...] = LABELS


@dataclass(frozen=True)
class Line:
    """One main turn.

    Attributes:
        speaker: Who speaks.
        text: What is said.
        labels: Intended QA labels (subset of ``QA_LABELS``).
        gap: Silence before the turn in seconds; None draws 0.3-1.5 s.
        interrupt: If set, the turn starts this many seconds before the previous
            main turn ends (the speaker talks over the other party).
        tempo: Speed factor (> 1 renders a rushed turn).
        gain_db: Level change for this turn (venting customers are louder).
        venting: Part of a customer venting window.
        typing: Agent keyboard typing during this turn (on the agent channel).
    """

    speaker: Speaker
    text: str
    labels: tuple[str, ...] = ()
    gap: float | None = None
    interrupt: float | None = None
    tempo: float = 1.0
    gain_db: float = 0.0
    venting: bool = False
    typing: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.labels) - set(QA_LABELS)
        if unknown:
            raise ValueError(f"unknown QA labels {sorted(unknown)} in line {self.text!r}")


@dataclass(frozen=True)
class Backchannel:
    """A short reply ("mm-hm") laid over the previous main turn of the other party.

    Attributes:
        speaker: Who backchannels (must differ from the previous main turn's speaker).
        text: The short reply.
        at: Position inside the previous main turn, as a fraction of its duration.
    """

    speaker: Speaker
    text: str
    at: float = 0.5


@dataclass(frozen=True)
class Pause:
    """An explicit silence between main turns.

    Attributes:
        seconds: Length of the gap.
        typing: Agent typing during the gap (while nobody speaks).
    """

    seconds: float
    typing: bool = False


@dataclass(frozen=True)
class HoldUpdate:
    """An agent status update during a hold.

    Attributes:
        after: Seconds of hold before the update.
        text: What the agent says.
    """

    after: float
    text: str


@dataclass(frozen=True)
class Hold:
    """The customer is on hold: nobody speaks, optionally with hold music.

    The lines before the hold carry the request (and the customer's answer);
    the flags here record what they say for the ground truth.

    Attributes:
        seconds: Hold time excluding status updates.
        music: Hold music on the agent channel (else silence with noise floor).
        permission_asked: The agent asked before holding.
        customer_agreed: The customer agreed to hold.
        updates: Status updates during the hold.
    """

    seconds: float
    music: bool
    permission_asked: bool
    customer_agreed: bool
    updates: tuple[HoldUpdate, ...] = ()


Event = Line | Backchannel | Pause | Hold


@dataclass(frozen=True)
class CallScript:
    """A whole scripted call.

    Attributes:
        call_id: Readable id, e.g. ``sample-billing-01``.
        agent_id: Agent identifier.
        domain: billing, shipping, printing, banking or telecom.
        agent_voice: Festival voice key of the agent ("slt" or "kal").
        customer_voice: Voice key of the customer.
        events: The dialogue.
        greeting: Which greeting parts the agent says (company, agent_name, offer_help).
        swap_channels: Write the agent on channel 1 and the customer on channel 0.
    """

    call_id: str
    agent_id: str
    domain: str
    agent_voice: str
    customer_voice: str
    events: tuple[Event, ...]
    greeting: dict[str, bool] = field(default_factory=dict)
    swap_channels: bool = False
