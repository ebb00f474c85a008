"""Draw the real-text annotation sample and write the annotators' shards.

About 5,800 distinct utterances over both roles (about half agent), per corpus and role:
45% uniformly at random and the rest oversampled from utterances that match a keyword cue of
a rare label (apology, empathy, read-backs, hold, next steps, greeting, identification, ...),
so that rare labels can reach 80 positives where the corpora have them. The cues only choose
*which* utterances are shown; annotators label every shown utterance from scratch, and the
``sampled_by`` field of the manifest lets evaluations reweight or restrict to the random part.

Writes (outside the repository) ``shard_1.jsonl`` / ``shard_2.jsonl``, lines
``{"id", "role", "context", "text"}``, with ``OVERLAP`` items in both shards for agreement;
and (in the repository, ids only) ``annotations/sample.jsonl``: ``{"id", "split", "shards",
"sampled_by"}``.

Usage::

    python -m models.utterance_classifier.sample_annotation \
        --corpora ../shared/corpora --out /work/ann
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

from models.utterance_classifier.real_text import RealUtterance, load_corpus

SEED = 20261206
RANDOM_SHARE = 0.45
OVERLAP = 400
HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "annotations" / "sample.jsonl"

QUOTAS: dict[tuple[str, str], int] = {
    ("harper_valley", "agent"): 600,
    ("ibm_twitter_customer_care", "agent"): 850,
    ("multiwoz", "agent"): 900,
    ("dstc10_track2", "agent"): 330,
    ("dstc9_track1", "agent"): 440,
    ("abcd", "agent"): 30,
    ("harper_valley", "customer"): 500,
    ("ibm_twitter_customer_care", "customer"): 900,
    ("multiwoz", "customer"): 640,
    ("dstc10_track2", "customer"): 300,
    ("multidogo", "customer"): 570,
    ("abcd", "customer"): 30,
}
"""Utterances drawn per (corpus, role); about 2,900 per role."""

_I = re.IGNORECASE
CUES: dict[str, dict[str, re.Pattern[str]]] = {
    "agent": {
        "apology": re.compile(r"\b(sorry|apolog\w*|regret|unfortunately|inconvenien\w*)\b", _I),
        "empathy": re.compile(
            r"\b(understand|frustrat\w*|must be|sounds like|hear that|imagine|concern\w*|"
            r"worr\w*|annoying|upsetting|stressful)\b",
            _I,
        ),
        "paraphrase": re.compile(
            r"\b(so you|you('re| are) looking|you want|you need|you'd like|you would like|"
            r"if i understand|to confirm|confirm\w*|you said|just to clarify|so that's|"
            r"that is|that's)\b",
            _I,
        ),
        "hold": re.compile(
            r"\b(hold|one moment|one second|a moment|a second|a minute|bear with|let me "
            r"(check|look|pull|see|find|get)|checking|looking (that|it|into)|thanks for "
            r"(waiting|holding)|patience|still (looking|checking|working))\b",
            _I,
        ),
        "next_steps": re.compile(
            r"\b(i will|i'll|we will|we'll|you will (receive|get|be)|you'll (receive|get|be)|"
            r"will be (sent|emailed|contacted|refunded)|within \w+ (days|hours)|next step|"
            r"i('m| am) going to|follow up)\b",
            _I,
        ),
        "greeting": re.compile(
            r"^\W*(hi|hello|hey|good (morning|afternoon|evening)|welcome|greetings)\b|"
            r"\bhow are you\b",
            _I,
        ),
        "identification": re.compile(
            r"\b(my name is|this is|speaking|you've reached|you have reached|"
            r"thank you for calling|thanks for calling)\b",
            _I,
        ),
        "offer_help": re.compile(
            r"\b(help|assist\w*|anything else|what can i do|how may i|how can i)\b", _I
        ),
        "blame_overwhelm_rushing": re.compile(
            r"\b(system|glitch|outage|technical|our end|partner|third.party|busy|volume|"
            r"swamped|delays?|quick\w*|hurry|move on|have to go|backlog)\b",
            _I,
        ),
        "jargon": re.compile(r"\b[A-Z]{3,}\b|\b(ticket|case number|escalat\w*|DM|PM)\b"),
        "courtesy_thanks": re.compile(
            r"\b(please|you're welcome|my pleasure|would you mind|take your time|thank|"
            r"thanks|appreciate)\b",
            _I,
        ),
    },
    "customer": {
        "upset": re.compile(
            r"\b(ridiculous|frustrat\w*|angry|upset|annoy\w*|terrible|worst|unacceptable|"
            r"disappoint\w*|hate|fed up|sick of|seriously|stress\w*|worried|awful|horrible|"
            r"wtf|damn|joke|pathetic|useless|shame|ugh)\b|!!|:\(",
            _I,
        ),
        "complaint": re.compile(
            r"\b(still|never|no one|nobody|charged|wrong|broken|not working|doesn't work|"
            r"won't|can't|didn't|failed|problem|issue|error|waited|waiting|days|weeks|"
            r"cancel\w*|refund|lost)\b",
            _I,
        ),
        "supervisor_request": re.compile(
            r"\b(supervisor|manager|someone else|higher up|escalate|real person|human|"
            r"representative|speak to|talk to)\b",
            _I,
        ),
        "satisfaction": re.compile(
            r"\b(thank|thanks|thx|great|perfect|awesome|appreciate\w*|helpful|excellent|"
            r"love|wonderful|fantastic|amazing|good)\b",
            _I,
        ),
        "question": re.compile(
            r"\?|\b(can i|could you|how (do|can|long)|what|when|where|why|wondering)\b", _I
        ),
    },
}
"""Keyword cues that pick likely positives of rare labels (selection only, never labels)."""


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def draw(corpora_dir: Path | None, seed: int = SEED) -> list[tuple[RealUtterance, str]]:
    """Draw the sample as ``(utterance, sampled_by)``: ``random`` or ``cue:<name>``."""
    rng = random.Random(seed)
    by_corpus: dict[str, list[RealUtterance]] = {}
    for corpus, _ in QUOTAS:
        if corpus not in by_corpus:
            by_corpus[corpus] = load_corpus(corpus, corpora_dir)
    chosen: list[tuple[RealUtterance, str]] = []
    seen_text: set[tuple[str, str]] = set()
    for (corpus, role), quota in QUOTAS.items():
        pool = [u for u in by_corpus[corpus] if u.role == role and len(_norm(u.text)) > 0]
        rng.shuffle(pool)
        picked: list[tuple[RealUtterance, str]] = []

        def take(u: RealUtterance, how: str, role: str = role) -> bool:
            key = (role, _norm(u.text))
            if key in seen_text:
                return False
            seen_text.add(key)
            picked.append((u, how))  # noqa: B023 - called only in this iteration
            return True

        n_random = round(quota * RANDOM_SHARE)
        rest = iter(pool)
        while len(picked) < n_random:
            u = next(rest, None)
            if u is None:
                break
            take(u, "random")
        used = {p[0].utterance_id for p in picked}
        cue_pools = {
            name: [u for u in pool if u.utterance_id not in used and pattern.search(u.text)]
            for name, pattern in CUES[role].items()
        }
        cursors = dict.fromkeys(cue_pools, 0)
        while len(picked) < quota and any(cursors[n] < len(cue_pools[n]) for n in cue_pools):
            for name, candidates in cue_pools.items():
                if len(picked) >= quota:
                    break
                while cursors[name] < len(candidates):
                    u = candidates[cursors[name]]
                    cursors[name] += 1
                    if u.utterance_id not in used and take(u, f"cue:{name}"):
                        used.add(u.utterance_id)
                        break
        for u in rest:  # top up with random items when the cues ran out
            if len(picked) >= quota:
                break
            if u.utterance_id not in used and take(u, "random"):
                used.add(u.utterance_id)
        chosen.extend(picked)
    return chosen


def write(chosen: list[tuple[RealUtterance, str]], out: Path, seed: int = SEED) -> None:
    """Write both shards (overlap items in both, in their first 2,000 lines) and the manifest."""
    rng = random.Random(seed + 1)
    items = [u for u, _ in chosen]
    rng.shuffle(items)
    overlap = items[:OVERLAP]
    rest = items[OVERLAP:]
    half = len(rest) // 2
    shards: list[list[RealUtterance]] = []
    for own in (rest[:half], rest[half:]):
        order = list(own)
        rng.shuffle(order)
        head, tail = order[: 2000 - OVERLAP], order[2000 - OVERLAP :]
        mixed = head + list(overlap)
        rng.shuffle(mixed)
        shards.append(mixed + tail)
    out.mkdir(parents=True, exist_ok=True)
    membership: dict[str, list[int]] = {}
    for k, shard in enumerate(shards, start=1):
        with open(out / f"shard_{k}.jsonl", "w") as f:
            for u in shard:
                membership.setdefault(u.utterance_id, []).append(k)
                f.write(
                    json.dumps(
                        {"id": u.utterance_id, "role": u.role, "context": u.context, "text": u.text}
                    )
                    + "\n"
                )
    MANIFEST.parent.mkdir(exist_ok=True)
    how = {u.utterance_id: h for u, h in chosen}
    with open(MANIFEST, "w") as f:
        for u, _ in sorted(chosen, key=lambda p: p[0].utterance_id):
            row = {
                "id": u.utterance_id,
                "split": u.split,
                "shards": membership[u.utterance_id],
                "sampled_by": how[u.utterance_id],
            }
            f.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpora",
        type=Path,
        default=None,
        help="corpora folder (default $CALLSCOPE_CORPORA or ../shared/corpora)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the shards (outside the repository)"
    )
    args = parser.parse_args(argv)
    chosen = draw(args.corpora)
    write(chosen, args.out)
    counts = Counter((u.corpus, u.role, u.split) for u, _ in chosen)
    by_how = Counter(h for _, h in chosen)
    print(f"{len(chosen)} utterances; roles {Counter(u.role for u, _ in chosen)}")
    print(f"sampled_by {dict(by_how)}")
    for key in sorted(counts):
        print(key, counts[key])


if __name__ == "__main__":
    main()
