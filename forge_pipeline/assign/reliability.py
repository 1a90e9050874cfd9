"""Agent reliability, derived from the persisted verdicts of every shard attempt.

History is the `shard_attempts` table itself: an Agent's judged verdicts (verified,
rejected, failed; an unsampled "accepted" shard is not a judgement) give its counts,
its current streak of verified shards and a score. Nothing is kept twice, so the
history cannot disagree with the evidence.

- score = (verified + 1) / (verified + 4·rejected + failed + 2): Laplace-smoothed, a
  rejection (wrong result) weighs four times a failure (crash, timeout). A new Agent
  scores 1/2.
- quarantined: its last judged verdict is bad and its score is below 1/2. A quarantined
  Agent gets no billable work, only probation shards (copies of shards an honest Agent
  also runs, never billed nor paid); passing one ends the quarantine.
- adaptive sampling, in the spirit of BOINC's adaptive replication: an Agent with a
  streak under 10 verified shards is sampled at twice the base rate, one with 50 or
  more at half; the rate used for each shard is recorded in the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from sqlalchemy import Engine, func, select

from forge_pipeline.storage.database import shard_attempts

JUDGED = ("verified", "rejected", "failed")
REJECTION_WEIGHT = 4
QUARANTINE_BELOW = Fraction(1, 2)
NEW_STREAK, TRUSTED_STREAK = 10, 50
STREAK_WINDOW = TRUSTED_STREAK  # trailing verdicts read per Agent: enough to tell every sampling tier


@dataclass(frozen=True)
class Reliability:
    agent_id: str
    verified: int = 0
    rejected: int = 0
    failed: int = 0
    streak: int = 0  # verified shards since the last rejection or failure
    last_verdict: str | None = None

    @property
    def score(self) -> Fraction:
        return Fraction(self.verified + 1, self.verified + REJECTION_WEIGHT * self.rejected + self.failed + 2)

    @property
    def quarantined(self) -> bool:
        return self.last_verdict in ("rejected", "failed") and self.score < QUARANTINE_BELOW

    def sample_rate(self, base: Fraction) -> Fraction:
        if self.streak < NEW_STREAK:
            return min(Fraction(1), 2 * base)
        return base / 2 if self.streak >= TRUSTED_STREAK else base



def reliability_of(engine: Engine, agent_ids: list[str]) -> dict[str, Reliability]:
    """Each Agent's reliability now, from its judged attempts (a new Agent has an empty record)."""
    judged = shard_attempts.c.verdict.in_(JUDGED)
    counts_query = (select(shard_attempts.c.agent_id, shard_attempts.c.verdict, func.count())
                    .where(shard_attempts.c.agent_id.in_(agent_ids), judged)
                    .group_by(shard_attempts.c.agent_id, shard_attempts.c.verdict))
    counts: dict[str, dict[str, int]] = {agent_id: {} for agent_id in agent_ids}
    recent: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for agent_id, verdict, count in connection.execute(counts_query):
            counts[agent_id][verdict] = count
        for agent_id in agent_ids:
            recent[agent_id] = list(connection.execute(
                select(shard_attempts.c.verdict).where(shard_attempts.c.agent_id == agent_id, judged)
                .order_by(shard_attempts.c.attempt_id.desc()).limit(STREAK_WINDOW)).scalars())
    result = {}
    for agent_id in agent_ids:
        streak = next((index for index, verdict in enumerate(recent[agent_id]) if verdict != "verified"),
                      len(recent[agent_id]))
        result[agent_id] = Reliability(agent_id, counts[agent_id].get("verified", 0),
                                       counts[agent_id].get("rejected", 0), counts[agent_id].get("failed", 0), streak,
                                       recent[agent_id][0] if recent[agent_id] else None)
    return result
