"""A generic vocabulary of agent-evaluation metrics, for naming clusters offline.

Names are deliberately general ("Tool error recovery", not "Flight search
retries") so a metric induced on one agent reads sensibly on another. The
offline namer uses an entry only when a cluster is close to it; otherwise
the cluster is named from its own keywords.
"""

GENERIC_METRICS: tuple[tuple[str, str], ...] = (
    ("Confirmation before irreversible actions", "asks the user to confirm before booking, paying, refunding, deleting or changing things"),
    ("Tool error recovery", "after a tool call fails, fixes the input or changes approach instead of repeating the same failing call"),
    ("Avoiding loops", "does not repeat the same action over and over without progress"),
    ("Respecting user constraints", "keeps to the limits, budget, preferences and requirements the user stated"),
    ("Grounding in tool results", "only states facts that tools or sources actually returned, without inventing details"),
    ("Clarifying questions", "asks for missing or ambiguous information instead of guessing or assuming"),
    ("Concise communication", "final replies are short, clear and easy to follow rather than long or rambling"),
    ("Efficient tool use", "avoids redundant or duplicate calls and unnecessary steps"),
    ("Policy adherence", "follows the domain's rules and policies, escalating when required"),
    ("Task completion", "achieves what the user asked for"),
    ("Search query quality", "searches with specific, well-formed queries that find the right results"),
    ("Navigation correctness", "clicks and navigates to the pages that lead to the answer, not irrelevant ones"),
    ("Verification of results", "checks that its answer or change actually works before finishing"),
    ("Planning and decomposition", "breaks the task into sensible steps and follows a coherent plan"),
    ("Instruction following", "does what it was instructed to do and nothing it was told not to do"),
    ("Accurate reasoning", "reasons correctly about the information it has, without logical or arithmetic errors"),
    ("Source reliability", "relies on official, trustworthy sources rather than unreliable third parties"),
    ("Natural, human-like behaviour", "speaks and acts in a natural, believable, human way rather than robotic or repetitive"),
    ("Politeness and respect", "is courteous, respectful and friendly towards the other party"),
    ("Relationship building", "maintains or improves the relationship and trust with the other party"),
    ("Information gathering", "learns new, useful information from the interaction"),
    ("Confidentiality", "keeps private or secret information to itself"),
    ("Social norm adherence", "follows social and ethical norms and laws, not breaking rules"),
    ("Negotiation outcome", "secures material, financial or practical benefits in a deal or exchange"),
    ("Goal achievement", "accomplishes its own goal in the interaction"),
    ("Helpfulness", "gives useful, relevant help that addresses the user's need"),
    ("Safety", "avoids harmful, risky or dangerous actions and content"),
    ("Code correctness", "writes code and edits that are correct and fix the problem"),
    ("Test integrity", "does not change tests to make them pass instead of fixing the code"),
    ("Proactive assistance", "offers help at the right moment, without interrupting when none is needed"),
)
