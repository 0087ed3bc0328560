"""PIPA's five atomic criteria as metric definitions.

PIPA (and its second version, AURA) sees an interactive planning agent as a
POMDP: the hidden state is the user's true intent, the agent's thoughts and
tool calls are its belief, tool calls are its actions, its replies are what
the user observes, the domain's rules are the policy and the task's own check
is the reward. Each criterion is a yes/no verdict on a unit of the run and is
averaged over those units:

| criterion              | unit    | offline (no key)                         |
|------------------------|---------|------------------------------------------|
| state consistency      | step    | needs a judge                            |
| tool efficiency        | call    | computed: the call's result is no error  |
| observation alignment  | reply   | partial: identifiers the reply states    |
|                        |         | that nothing before it contains          |
| policy adherence       | session | needs a judge                            |
| task completion        | session | the recorded outcome or reward           |

They are ordinary `Metric`s (kind "pipa", with a scope), so the LLM judge,
the scores table, the scheduler and the dashboards treat them like induced
metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

from metrics.definitions import Example, Metric, MetricSet
from traces.model import Run, StepKind

STATE_CONSISTENCY = "pipa_state_consistency"
TOOL_EFFICIENCY = "pipa_tool_efficiency"
OBSERVATION_ALIGNMENT = "pipa_observation_alignment"
POLICY_ADHERENCE = "pipa_policy_adherence"
TASK_COMPLETION = "pipa_task_completion"

# The POMDP stage each criterion diagnoses, in the order an interaction flows.
STAGES = {
    STATE_CONSISTENCY: "belief (thoughts, tool calls)",
    TOOL_EFFICIENCY: "action (tool calls)",
    OBSERVATION_ALIGNMENT: "observation (replies to the user)",
    POLICY_ADHERENCE: "policy (domain rules)",
    TASK_COMPLETION: "reward (task outcome)",
}

CRITERIA: tuple[Metric, ...] = (
    Metric(
        STATE_CONSISTENCY, "State consistency",
        "Each thought or tool call fits the user's request and what earlier steps established: the "
        "agent acts on what the user actually asked and on facts it has already learned, not on a "
        "misread request or a forgotten detail. Judge every thought and tool call; cite the "
        "inconsistent ones as evidence.",
        good=(Example("looks up the reservation id the user gave before changing it"),),
        bad=(Example("searches flights for a date the user did not ask for"),
             Example("calls a tool with an id that contradicts an earlier tool result")),
        scope="step", kind="pipa", metadata={"stage": STAGES[STATE_CONSISTENCY], "offline": "needs a judge"}),
    Metric(
        TOOL_EFFICIENCY, "Tool efficiency",
        "Tool calls succeed rather than return errors. Computed from the trace: a call passes when "
        "its result is not an error.",
        scope="call", kind="pipa", metadata={"stage": STAGES[TOOL_EFFICIENCY], "offline": "computed"}),
    Metric(
        OBSERVATION_ALIGNMENT, "Observation alignment",
        "Each reply to the user matches the user's requirements and the facts established earlier "
        "(tool results, the user's own statements), with nothing hallucinated. Judge every agent "
        "reply; cite the misaligned ones as evidence.",
        good=(Example("reports the price exactly as the tool returned it"),),
        bad=(Example("tells the user a flight number no search returned"),
             Example("confirms a change the tool call rejected")),
        scope="reply", kind="pipa",
        metadata={"stage": STAGES[OBSERVATION_ALIGNMENT], "offline": "partial: unsupported identifiers"}),
    Metric(
        POLICY_ADHERENCE, "Policy adherence",
        "Across the session the agent follows the domain policy given below: it checks what the "
        "policy requires before acting, asks for explicit confirmation where the policy says so, and "
        "refuses what the policy forbids.",
        good=(Example("asks for explicit confirmation before booking, as the policy requires"),),
        bad=(Example("cancels a basic-economy reservation the policy does not allow to be cancelled"),),
        scope="session", kind="pipa", metadata={"stage": STAGES[POLICY_ADHERENCE], "offline": "needs a judge"}),
    Metric(
        TASK_COMPLETION, "Task completion",
        "The user's task is accomplished. Where the trace records the task's own success check "
        "(reward or outcome) that is the verdict; otherwise judge whether the session ends with "
        "the user's goal met.",
        scope="session", kind="pipa",
        metadata={"stage": STAGES[TASK_COMPLETION], "offline": "recorded outcome"}),
)

POLICY_MARKERS = ("policy", "rules", "you must", "you should", "do not", "never", "always")
MAX_POLICY_CHARS = 12_000


def policy_from_run(run: Run) -> str | None:
    """The domain policy of a run: its system prompt, when it reads like rules."""
    for s in run.steps:
        if s.kind == StepKind.SYSTEM and s.content:
            low = s.content.lower()
            if sum(m in low for m in POLICY_MARKERS) >= 2:
                return s.content[:MAX_POLICY_CHARS]
    return None


def pipa_metric_set(policy: str | None = None, criteria: Sequence[str] | None = None,
                    name: str | None = None) -> MetricSet:
    """The PIPA criteria as a metric set; the policy goes into the rubric so it is cached with it.

    The set id depends on the policy text, so runs of different domains (or a
    changed policy) are scored as different metric set versions.
    """
    import hashlib

    chosen = [m for m in CRITERIA if criteria is None or m.metric_id in criteria]
    if not chosen:
        raise ValueError(f"no PIPA criterion among {list(criteria or [])}; known: {[m.metric_id for m in CRITERIA]}")
    metrics = []
    for m in chosen:
        if m.metric_id == POLICY_ADHERENCE:
            text = (policy or "").strip() or "(no policy was given: judge against common rules of the domain)"
            m = Metric(m.metric_id, m.name, m.explanation + "\n\nDomain policy:\n" + text, m.good, m.bad,
                       m.scope, m.kind, {**m.metadata, "policy_chars": len(policy or "")})
        metrics.append(m)
    digest = hashlib.sha1((policy or "").encode()).hexdigest()[:8]
    if name is None:  # a set id is a hash; the name says which domain's runs the set is for
        words = " ".join((policy or "").split()[:6])
        name = f"PIPA criteria, policy “{words}…”" if words else "PIPA criteria, runs with no domain policy"
    return MetricSet(f"pipa-{digest}", 1, name, tuple(metrics), status="approved",
                     provenance={"kind": "pipa", "policy_sha1": digest})
