"""Domain content and the composer that turns a ``CallPlan`` into a ``CallScript``.

Every call is assembled from the same skeleton (greeting, issue, identification,
look-up, optional hold, resolution, closing); the plan switches features on and
off so each detector sees positives and negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.callgen.script import (
    Backchannel,
    CallScript,
    Event,
    Hold,
    HoldUpdate,
    Line,
    Pause,
)

DOMAINS: tuple[str, ...] = ("billing", "shipping", "printing", "banking", "telecom")


@dataclass(frozen=True)
class DomainContent:
    """What customers and agents say in one business domain."""

    company: str
    issue: str  # customer's opening complaint
    detail: str  # customer's longer elaboration (a backchannel host)
    paraphrase: str  # agent restates the problem
    finding: str  # agent's explanation after the look-up (a backchannel host)
    jargon: str  # the same explanation in internal jargon
    blame: str  # agent blames someone else
    resolution: str  # what the agent will do (next steps)
    follow_up: str  # customer's question
    answer: str  # agent's answer to the follow-up
    venting: tuple[str, ...]  # customer's angry sentences


CONTENT: dict[str, DomainContent] = {
    "billing": DomainContent(
        company="Brightwave Energy",
        issue="Hi, I was charged twice on my last electricity bill and I am not happy about it.",
        detail="I looked at my bank statement this morning and there are two payments for the "
        "same month, and both of them went through on the same day.",
        paraphrase="So if I understand correctly, you were billed twice for the same month.",
        finding="I can see what happened here. The payment was submitted twice by our system "
        "during the maintenance window, so the second charge was a mistake on our side.",
        jargon="The duplicate is a reversed ledger entry pending settlement in the billing "
        "batch, flagged under a code seven adjustment in the revenue assurance queue.",
        blame="Honestly, that is your bank's fault, they should have blocked the second payment.",
        resolution="I have issued a refund for the second payment, and you will see it back "
        "on your card within five business days.",
        follow_up="Will this happen again on my next bill?",
        answer="No, I have added a note to your account, so the next bill will be charged "
        "only once.",
        venting=(
            "This is the third time this year that you people have messed up my bill.",
            "Every single time I call, I have to wait forever and explain everything again.",
            "I am paying for a service and all I get is mistakes and excuses.",
            "Honestly, it is ridiculous and I am completely fed up with this company.",
            "I have better things to do than chase my own money every month.",
        ),
    ),
    "shipping": DomainContent(
        company="Parcel Point",
        issue="Hello, my order was supposed to arrive last week and it still has not shown up.",
        detail="The tracking page has said out for delivery for five days now, and nobody "
        "has knocked on my door or left a note.",
        paraphrase="So your package shows out for delivery, but it never actually arrived.",
        finding="I can see the parcel was sent to the wrong depot after it was scanned, "
        "so it has been sitting there since Tuesday.",
        jargon="The consignment failed the hub sort and got a misroute exception at the "
        "regional node, so it is stuck in the line haul queue.",
        blame="That is the courier's fault, they always lose things, there is nothing we can do.",
        resolution="I have sent a new parcel with express delivery, and it should arrive "
        "by Friday.",
        follow_up="Do I need to be at home to sign for it?",
        answer="No, the driver can leave it in a safe place, and you will get a photo "
        "when it is delivered.",
        venting=(
            "I ordered this as a birthday present and now the birthday is over.",
            "I have called three times already and every time somebody promises to fix it.",
            "Nobody ever calls me back and the tracking page is completely useless.",
            "This is absolutely the worst delivery service I have ever used.",
            "I am really angry, I paid extra for fast shipping and got nothing.",
        ),
    ),
    "printing": DomainContent(
        company="Inkwell Printers",
        issue="Hi, my new printer keeps jamming and it will not print anything at all.",
        detail="Every time I send a document, it pulls in the paper halfway, makes a loud "
        "grinding noise, and then shows an error light.",
        paraphrase="So the printer pulls the paper in, grinds, and then stops with an error light.",
        finding="From the error history, it looks like the paper guide is set for a "
        "smaller paper size, which makes the rollers grab the page at an angle.",
        jargon="The device is throwing a pick roller fault on tray two because the media "
        "profile does not match the duplex path firmware settings.",
        blame="That is really the fault of the cheap paper you are using, not our printer.",
        resolution="I will email you a short guide to reset the paper guide, and if it "
        "still jams we will replace the printer for free.",
        follow_up="Will the replacement be the same model?",
        answer="Yes, you will get the same model, brand new, with a fresh warranty.",
        venting=(
            "I bought this printer two weeks ago and it has never worked properly.",
            "I needed to print my tax forms yesterday and I missed the deadline because of it.",
            "The manual is useless and your website just sends me in circles.",
            "I spent a lot of money on this and it is a complete piece of junk.",
            "I am really frustrated, I feel like nobody there cares at all.",
        ),
    ),
    "banking": DomainContent(
        company="Harbor Trust Bank",
        issue="Hello, my debit card was declined at the supermarket and I do not know why.",
        detail="I have plenty of money in my account, but the card was declined twice, "
        "and I had to leave my groceries at the counter.",
        paraphrase="So your card was declined even though you have enough money in the account.",
        finding="I can see that our fraud system blocked the card after a purchase from "
        "another country last night, which is why the payments were declined.",
        jargon="The card was hot carded by the fraud engine after a velocity rule hit on "
        "a card not present authorization from a foreign acquirer.",
        blame="Well, that is the store's problem, their card machines are always broken.",
        resolution="I have unblocked your card, and I am also sending you a new card "
        "in the post, which should arrive within a week.",
        follow_up="Was any money taken from my account?",
        answer="No, the foreign purchase was stopped, so no money left your account.",
        venting=(
            "It was so embarrassing to stand there with a line of people behind me.",
            "Nobody from the bank warned me about anything, not a text, not a call.",
            "I have been a customer for twelve years and this is how you treat me.",
            "I am absolutely furious, this is my money and I could not even use it.",
            "Your app did not show any problem either, it is just terrible.",
        ),
    ),
    "telecom": DomainContent(
        company="Skyline Mobile",
        issue="Hi, my internet has been dropping out every evening for the past week.",
        detail="It works fine in the morning, but every night around seven it just "
        "disconnects, and I work from home, so I really need it.",
        paraphrase="So the connection drops every evening around seven, but the mornings are fine.",
        finding="I can see there is heavy traffic on the equipment in your street in the "
        "evenings, and one of the lines to your home is showing errors.",
        jargon="Your line is showing high error counts on the DSLAM port with "
        "repeated resyncs, and the cabinet backhaul is congested at peak.",
        blame="That is probably your own router, people buy cheap routers and then blame us.",
        resolution="I have booked an engineer to check the line on Thursday morning, "
        "and I have added a credit to your account for the lost service.",
        follow_up="Do I have to be home when the engineer comes?",
        answer="Yes, someone will need to be at home between eight and twelve to let "
        "the engineer in.",
        venting=(
            "I lost an important video meeting last night because of this.",
            "I pay for the fastest plan you have and it does not even stay connected.",
            "I have restarted the router about twenty times and nothing helps.",
            "It is completely unacceptable, and I am sick of paying for nothing.",
            "If this is not fixed, I am cancelling and going to another provider.",
        ),
    ),
}

AGENT_NAMES: tuple[str, ...] = ("Sarah", "Michael", "Emma", "David", "Laura", "James")
CUSTOMER_NAMES: tuple[str, ...] = (
    "Jordan Miller",
    "Alex Turner",
    "Chris Walker",
    "Pat Morgan",
    "Sam Fisher",
)
BACKCHANNELS: tuple[str, ...] = ("Mm-hm.", "Okay.", "Right.", "Uh-huh.", "I see.")


@dataclass(frozen=True)
class HoldPlan:
    """How a hold goes.

    Attributes:
        seconds: Hold time excluding updates.
        music: Hold music (else silence).
        permission: The agent asks before holding.
        agreed: The customer agrees (only meaningful with permission).
        update_after: Seconds into the hold for a status update, or None.
        thank_on_return: The agent thanks the customer for holding on return.
    """

    seconds: float
    music: bool
    permission: bool
    agreed: bool
    update_after: float | None = None
    thank_on_return: bool = True


@dataclass(frozen=True)
class CallPlan:
    """Which features a call has; ``compose`` turns it into a script."""

    call_id: str
    agent_id: str
    domain: str
    agent_voice: str = "slt"
    greet_company: bool = True
    greet_name: bool = True
    greet_offer: bool = True
    venting: int = 0  # number of venting sentences (0 = none)
    interruption: bool = False
    agent_backchannels: int = 1
    customer_backchannels: int = 1
    typing_during_customer: bool = False
    typing_silent: float | None = None  # gap with typing while nobody speaks
    long_gap: float | None = None  # silent gap (non-talk when >= 3 s, near miss below)
    hold: HoldPlan | None = None
    jargon: bool = False
    blame: bool = False
    rushed: bool = False
    overwhelm: bool = False
    supervisor: bool = False
    follow_up: bool = True
    detail: bool = True  # customer elaborates on the issue
    identify: bool = True  # agent asks for name and postcode
    paraphrase: bool = True  # agent restates the problem (and the customer confirms)
    explain: bool = True  # agent explains the cause before the resolution
    closing_exchange: bool = True  # "anything else?" and the customer's reply
    swap_channels: bool = False


def compose(plan: CallPlan, rng: np.random.Generator) -> CallScript:
    """Builds the scripted dialogue for ``plan``.

    Args:
        plan: Feature switches of the call.
        rng: Source of the small random choices (names, backchannel words).

    Returns:
        The call script.

    Raises:
        ValueError: For an unknown domain.
    """
    if plan.domain not in CONTENT:
        raise ValueError(f"unknown domain {plan.domain!r}; expected one of {DOMAINS}")
    c = CONTENT[plan.domain]
    agent_name = AGENT_NAMES[int(rng.integers(len(AGENT_NAMES)))]
    customer = CUSTOMER_NAMES[int(rng.integers(len(CUSTOMER_NAMES)))]

    def bc() -> str:
        return BACKCHANNELS[int(rng.integers(len(BACKCHANNELS)))]

    ev: list[Event] = []
    # Greeting: company, own name and an offer to help, each may be missing.
    parts, labels = [], ["greeting"]
    parts.append(f"Thank you for calling {c.company}." if plan.greet_company else "Hello.")
    if plan.greet_name:
        parts.append(f"My name is {agent_name}.")
    if plan.greet_company or plan.greet_name:
        labels.append("identification")
    if plan.greet_offer:
        parts.append("How can I help you today?")
        labels.append("offer_help")
    ev.append(Line("agent", " ".join(parts), tuple(labels)))

    ev.append(Line("customer", c.issue, ("complaint",)))
    if plan.detail:
        ev.append(Line("customer", c.detail, ("complaint",), gap=0.4))
    agent_bc = plan.agent_backchannels
    if agent_bc > 0:
        ev.append(Backchannel("agent", bc(), at=0.45))
        agent_bc -= 1

    if plan.venting:
        for i, sentence in enumerate(c.venting[: plan.venting]):
            ev.append(
                Line(
                    "customer",
                    sentence,
                    ("upset", "complaint"),
                    gap=0.25,
                    gain_db=6.0,
                    tempo=1.08,
                    venting=True,
                )
            )
            if i == 1 and agent_bc > 0:
                ev.append(Backchannel("agent", bc(), at=0.4))
                agent_bc -= 1
        if plan.interruption:
            ev.append(
                Line(
                    "customer",
                    "And I want to know exactly what you are going to do about "
                    "it, because I am not paying for your mistakes again.",
                    ("upset", "complaint"),
                    gain_db=6.0,
                    venting=True,
                )
            )
            ev.append(
                Line(
                    "agent",
                    "Okay, okay, let me stop you there, I just need to check your account first.",
                    (),
                    interrupt=1.8,
                )
            )
        ev.append(
            Line(
                "agent",
                "I am really sorry about this. I completely understand how "
                "frustrating that must be.",
                ("apology", "empathy"),
            )
        )
    elif plan.interruption:
        ev.append(
            Line(
                "customer",
                "And on top of that, I have been waiting on the phone for "
                "twenty minutes just to talk to somebody about it.",
                ("complaint",),
            )
        )
        ev.append(
            Line(
                "agent",
                "Right, right, I get it, can you just give me your name?",
                ("question",),
                interrupt=1.6,
            )
        )
    else:
        ev.append(
            Line(
                "agent",
                "I am sorry to hear that, let me see what I can do for you.",
                ("apology", "empathy"),
            )
        )

    if plan.identify:
        ev.append(
            Line(
                "agent",
                "Could I please have your full name and the postcode on the account?",
                ("question", "courtesy"),
            )
        )
        ev.append(
            Line(
                "customer",
                f"Sure, it is {customer}, and the postcode is north west one, four lima bravo.",
                typing=plan.typing_during_customer,
            )
        )
        ev.append(Line("agent", f"Thank you, {customer.split()[0]}.", ("thanks",)))
    elif plan.typing_during_customer:
        ev.append(Line("agent", "Could you tell me when this started?", ("question",)))
        ev.append(
            Line(
                "customer",
                "It started about a week ago, and it has been the same "
                "every single day since then.",
                typing=True,
            )
        )
    if plan.paraphrase:
        ev.append(Line("agent", c.paraphrase, ("paraphrase",), gap=0.3))
        ev.append(Line("customer", "Yes, exactly.", ()))

    if plan.typing_silent is not None:
        ev.append(Line("agent", "Okay, let me pull up your account.", ()))
        ev.append(Pause(plan.typing_silent, typing=True))
    if plan.long_gap is not None:
        ev.append(Line("agent", "Just a second.", ()))
        ev.append(Pause(plan.long_gap))

    if plan.overwhelm:
        ev.append(
            Line(
                "agent",
                "Sorry, it is just crazy today, I have so many calls waiting and "
                "I can barely keep up.",
                ("overwhelm",),
            )
        )

    if plan.hold is not None:
        h = plan.hold
        if h.permission:
            ev.append(
                Line(
                    "agent",
                    "Would you mind if I place you on a brief hold while I check "
                    "this with my team?",
                    ("hold_request", "question", "courtesy"),
                )
            )
            if h.agreed:
                ev.append(Line("customer", "Sure, go ahead.", ()))
        else:
            ev.append(Line("agent", "Hold on, I am putting you on hold.", ("hold_request",)))
        updates: tuple[HoldUpdate, ...] = ()
        if h.update_after is not None:
            updates = (
                HoldUpdate(
                    h.update_after,
                    "Thank you for waiting, I am still checking this "
                    "for you, it will be just another minute.",
                ),
            )
        ev.append(
            Hold(
                h.seconds,
                h.music,
                permission_asked=h.permission,
                customer_agreed=h.permission and h.agreed,
                updates=updates,
            )
        )
        if h.thank_on_return:
            ev.append(Line("agent", "Thank you so much for holding.", ("thanks", "courtesy")))
        else:
            ev.append(Line("agent", "Okay.", ()))
    customer_bc = plan.customer_backchannels
    if plan.explain or plan.jargon:
        ev.append(
            Line(
                "agent", c.jargon if plan.jargon else c.finding, ("jargon",) if plan.jargon else ()
            )
        )
        if customer_bc > 0:
            ev.append(Backchannel("customer", bc(), at=0.5))
            customer_bc -= 1
    if plan.jargon:
        ev.append(Line("customer", "Sorry, I have no idea what that means.", ("complaint",)))
    if plan.blame:
        ev.append(Line("agent", c.blame, ("blame",)))
    ev.append(
        Line(
            "agent",
            c.resolution,
            ("next_steps", "rushing") if plan.rushed else ("next_steps",),
            tempo=1.35 if plan.rushed else 1.0,
            gap=0.6,
        )
    )
    if customer_bc > 0:
        ev.append(Backchannel("customer", bc(), at=0.55))

    if plan.supervisor:
        ev.append(
            Line(
                "customer",
                "That is not good enough. I want to speak to your supervisor, right now.",
                ("supervisor_request", "upset"),
            )
        )
        ev.append(
            Line(
                "agent",
                "I understand, I will ask my supervisor to call you back today.",
                ("empathy", "next_steps"),
            )
        )
    if plan.follow_up:
        ev.append(Line("customer", c.follow_up, ("question",)))
        ev.append(Line("agent", c.answer, ()))
    if plan.closing_exchange:
        ev.append(
            Line(
                "agent",
                "Is there anything else I can help you with today?",
                ("offer_help", "courtesy"),
            )
        )
        if plan.supervisor or plan.venting >= 3:
            ev.append(Line("customer", "No. Just make sure it gets fixed this time.", ()))
        else:
            ev.append(
                Line(
                    "customer",
                    "No, that is all. Thank you so much, that was really helpful.",
                    ("thanks", "satisfaction"),
                )
            )
    else:
        ev.append(Line("customer", "Okay, thanks.", ("thanks",)))
    closing = "You are welcome. Thank you for calling"
    closing += f" {c.company}, have a great day." if plan.greet_company else ", goodbye."
    ev.append(Line("agent", closing, ("thanks", "courtesy")))

    customer_voice = "kal" if plan.agent_voice == "slt" else "slt"
    return CallScript(
        call_id=plan.call_id,
        agent_id=plan.agent_id,
        domain=plan.domain,
        agent_voice=plan.agent_voice,
        customer_voice=customer_voice,
        events=tuple(ev),
        greeting={
            "company": plan.greet_company,
            "agent_name": plan.greet_name,
            "offer_help": plan.greet_offer,
        },
        swap_channels=plan.swap_channels,
    )
