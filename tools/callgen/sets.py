"""The named call sets: ``samples``, ``dynamics``, ``bad`` and ``consistency``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from tools.callgen.dialogues import DOMAINS, CallPlan, HoldPlan, compose
from tools.callgen.render import TurnRenderer
from tools.callgen.timeline import layout

logger = logging.getLogger(__name__)

QUEUES: dict[str, str] = {
    "billing": "billing-support",
    "shipping": "order-tracking",
    "printing": "tech-support",
    "banking": "cards",
    "telecom": "broadband-support",
}


def sample_plans() -> list[CallPlan]:
    """The bundled demo calls: each covers several features, 60-120 s long."""
    return [
        CallPlan(
            "sample-billing-01",
            "agent-01",
            "billing",
            agent_voice="slt",
            venting=5,
            interruption=True,
            agent_backchannels=2,
            customer_backchannels=2,
            typing_during_customer=True,
            follow_up=False,
        ),
        CallPlan(
            "sample-shipping-02",
            "agent-02",
            "shipping",
            agent_voice="kal",
            greet_offer=False,
            detail=False,
            follow_up=False,
            identify=False,
            typing_during_customer=True,
            swap_channels=True,
            hold=HoldPlan(40.0, music=True, permission=True, agreed=True, update_after=31.0),
        ),
        CallPlan(
            "sample-printing-03",
            "agent-03",
            "printing",
            agent_voice="slt",
            greet_name=False,
            jargon=True,
            blame=True,
            rushed=True,
            long_gap=2.5,
            agent_backchannels=2,
            customer_backchannels=2,
            typing_during_customer=True,
            interruption=True,
        ),
        CallPlan(
            "sample-banking-04",
            "agent-01",
            "banking",
            agent_voice="kal",
            detail=False,
            supervisor=True,
            typing_silent=3.5,
            follow_up=False,
            hold=HoldPlan(32.0, music=False, permission=False, agreed=False, thank_on_return=False),
        ),
        CallPlan(
            "sample-telecom-05",
            "agent-02",
            "telecom",
            agent_voice="slt",
            venting=3,
            overwhelm=True,
            customer_backchannels=2,
            typing_during_customer=True,
            long_gap=3.4,
        ),
    ]


def dynamics_plans(seed: int) -> list[CallPlan]:
    """20 shorter calls (40-90 s) with features switched on and off for detector metrics.

    Features rotate with different periods so most combinations occur; timing
    values are drawn from ``seed``. Calls with a hold skip the optional dialogue
    (explanation, closing exchange, venting) to stay short.
    """
    rng = np.random.default_rng(seed)
    plans = []
    for i in range(20):
        hold = None
        kind = i % 4  # 0: no hold, 1: music, 2: silence, 3: long, status update or not
        if kind:
            long_hold = kind == 3
            hold = HoldPlan(
                float(rng.uniform(35, 38) if long_hold else rng.uniform(31, 34)),
                music=(i // 4) % 2 == 0 if long_hold else kind == 1,
                permission=i % 3 != 0,
                agreed=i % 5 != 0,
                update_after=float(rng.uniform(30.5, 31.5)) if long_hold and i % 8 == 3 else None,
                thank_on_return=i % 2 == 1,
            )
        gap_kind = i % 3  # 0: non-talk (>= 3 s), 1: near miss (2-2.9 s), 2: none
        long_gap = (
            float(rng.uniform(3.3, 6.0))
            if gap_kind == 0
            else float(rng.uniform(2.0, 2.9))
            if gap_kind == 1
            else None
        )
        venting = 4 if hold is None and i % 8 == 0 else 0
        if hold is None and i % 8 == 4:
            venting = 3
        plans.append(
            CallPlan(
                f"dyn-{i:03d}",
                f"agent-{1 + i % 4:02d}",
                DOMAINS[i % len(DOMAINS)],
                agent_voice="slt" if (i // 2) % 2 == 0 else "kal",
                greet_company=i % 7 != 3,
                greet_name=i % 5 != 2,
                greet_offer=i % 6 != 4,
                venting=venting,
                interruption=hold is None or (kind == 1 and i % 3 == 0),
                agent_backchannels=int(rng.integers(0, 3)),
                customer_backchannels=int(rng.integers(0, 3)),
                typing_during_customer=i % 2 == 0,
                typing_silent=float(rng.uniform(3.2, 5.0))
                if i % 5 in (1, 3) and kind != 3
                else None,
                long_gap=(
                    float(rng.uniform(2.0, 2.9))  # long holds without update: near miss
                    if kind == 3 and i % 8 == 7
                    else None
                    if kind == 3 or (hold is not None and i % 5 in (1, 3))
                    else long_gap
                ),
                hold=hold,
                jargon=hold is None and i % 6 == 5,
                blame=hold is None and i % 7 == 6,
                rushed=i % 4 == 2,
                overwhelm=hold is None and i % 9 == 8,
                supervisor=hold is None and i % 10 == 9,
                follow_up=False,
                detail=False,
                paraphrase=venting == 0 and not (hold is not None and kind == 3),
                identify=False,
                explain=hold is None,
                closing_exchange=hold is None and venting == 0,
            )
        )
    return plans


def _render_plans(
    plans: list[CallPlan], out: Path, seed: int, renderer: TurnRenderer
) -> list[dict[str, Any]]:
    truths = []
    for i, plan in enumerate(plans):
        script = compose(plan, np.random.default_rng([seed, i]))
        truths.append(layout(script, renderer, out, seed))
    return truths


def write_manifest(truths: list[dict[str, Any]], manifest: Path, audio_dir: Path) -> None:
    """Writes a JSONL manifest with audio paths relative to the manifest file."""
    base = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    lines = []
    for i, t in enumerate(truths):
        rel = (audio_dir / t["audio"]).resolve().relative_to(manifest.parent.resolve())
        rec: dict[str, Any] = {
            "call_id": t["call_id"],
            "audio": rel.as_posix(),
            "agent_id": t["agent_id"],
            "started_at": (base + timedelta(minutes=37 * i)).isoformat(),
            "queue": QUEUES[t["domain"]],
            "language": "en",
        }
        if t["channels"] != {"agent": 0, "customer": 1}:
            rec["channels"] = t["channels"]
        lines.append(json.dumps(rec))
    manifest.write_text("\n".join(lines) + "\n")


def build_samples(out: Path, seed: int, renderer: TurnRenderer) -> None:
    """Writes the demo calls to ``out/calls`` and ``out/manifest.jsonl``."""
    truths = _render_plans(sample_plans(), out / "calls", seed, renderer)
    write_manifest(truths, out / "manifest.jsonl", out / "calls")


def build_dynamics(out: Path, seed: int, renderer: TurnRenderer) -> None:
    """Writes the dynamics fixture calls to ``out``."""
    _render_plans(dynamics_plans(seed), out, seed, renderer)


def build_bad(out: Path, seed: int, renderer: TurnRenderer) -> None:
    """Writes malformed and edge-case inputs to ``out``."""
    from tools.callgen.bad import write_bad_set

    write_bad_set(out, seed, renderer)


def build_consistency(out: Path, seed: int, renderer: TurnRenderer) -> None:
    """Writes short multi-agent knowledge-consistency calls to ``out``."""
    from tools.callgen.consistency import write_consistency_calls

    write_consistency_calls(out, seed, renderer)


SETS: dict[str, Callable[[Path, int, TurnRenderer], None]] = {
    "samples": build_samples,
    "dynamics": build_dynamics,
    "bad": build_bad,
    "consistency": build_consistency,
}
