"""What the demo's annotators write about each behaviour, praising it (1) or not (-1), in their own
wording; `{x}` slots are filled from the run. Kept apart from the generator: it is data, not logic."""

from __future__ import annotations

PHRASES = {
    ("confirmation", 1): [
        "Good that it asked the user to confirm before {act}.",
        "Checked with the user before {act}, which is what we want.",
        "Confirmed the details with the user first, then went ahead with {act}.",
        "nice: explicit confirmation before {act}",
    ],
    ("confirmation", -1): [
        "It went ahead with {act} without asking the user to confirm.",
        "No confirmation step before {act}; the user never agreed to this.",
        "Did {act} straight away, never checked with the user first.",
        "should have asked for a yes before {act}",
    ],
    ("error_recovery", 1): [
        "When {tool} failed it fixed the arguments and the retry worked.",
        "Recovered well from the {tool} error by correcting the input.",
        "Handled the failed {tool} call gracefully and moved on.",
    ],
    ("error_recovery", -1): [
        "Kept calling {tool} with the same arguments after it failed, stuck in a loop.",
        "Repeated the identical failing {tool} call several times instead of changing anything.",
        "It looped on the {tool} error and never tried a different approach.",
        "same broken {tool} call again and again",
    ],
    ("constraint", 1): [
        "Respected the user's limit ({limit}).",
        "Stayed within what the user asked for: {limit}.",
        "Paid attention to the constraint ({limit}) when choosing.",
    ],
    ("constraint", -1): [
        "Ignored the user's constraint ({limit}).",
        "The user said {limit} and the agent went past it anyway.",
        "Chose something that breaks the user's requirement of {limit}.",
        "didn't respect {limit}",
    ],
    ("grounding", 1): [
        "Everything it told the user came from the {tool} results.",
        "Only reported facts that the tools actually returned.",
        "Answer is backed by what {tool} returned, nothing invented.",
    ],
    ("grounding", -1): [
        "It made up {fact}, which is not in any tool output.",
        "Told the user {fact} but the tools never returned that; hallucinated.",
        "Invented {fact} instead of reading the {tool} result.",
        "claims {fact} out of nowhere",
    ],
    ("clarification", 1): [
        "Asked for the missing {missing} instead of guessing.",
        "Good clarifying question about the {missing}.",
        "Noticed the request had no {missing} and asked the user.",
    ],
    ("clarification", -1): [
        "Guessed the {missing} instead of asking the user.",
        "The request had no {missing}; the agent just assumed one.",
        "Should have asked which {missing} the user meant.",
    ],
    ("communication", 1): [
        "Clear, short final summary.",
        "The final message was concise and easy to follow.",
        "Nice wrap-up: told the user exactly what was done in two sentences.",
    ],
    ("communication", -1): [
        "The final reply rambles and buries the answer.",
        "Way too long and wordy at the end; hard to find what was done.",
        "Final message is confusing and full of jargon.",
    ],
    ("efficiency", 1): [
        "Went straight to the right tools, no wasted calls.",
        "Efficient: every call was needed.",
    ],
    ("efficiency", -1): [
        "Called {tool} twice for the same thing; redundant.",
        "Wasted a call repeating {tool} with identical arguments.",
        "Unnecessary duplicate {tool} lookup.",
    ],
}

# A behaviour that appears only in later runs (`generate_runs(new_behaviour=True)`): people start
# remarking on something no metric induced from the earlier feedback is about.
NEW_TRAIT = "privacy"
PHRASES.update({
    (NEW_TRAIT, 1): [
        "Kept the card number private, only showed the last four digits.",
        "Good privacy: never repeated the user's payment details.",
        "Masked the card number in the reply, as it should.",
    ],
    (NEW_TRAIT, -1): [
        "It pasted the user's full card number and security code into the chat.",
        "Leaked the payment details: full card number in plain text.",
        "Privacy problem: repeated the whole card number and CVV back to the user.",
        "never echo a full card number like that",
    ],
})
