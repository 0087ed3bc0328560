"""Reward models: would people accept this proposal (or agree with this silence)?

Three backends behind `fit(proposals)` / `predict_proba(proposals)`:

- `EmbeddingRewardModel` (offline floor): logistic regression over sentence
  embeddings of the recent events and the proposal, their interaction and
  similarity, and whether the assistant stayed silent.
- `FineTunedRewardModel` (offline): the bundled MiniLM encoder fine-tuned
  on the CPU as a cross-encoder over (recent events, proposal) pairs.
- `LLMRewardModel`: Claude as the judge, with labelled examples from the
  training data in the cached prompt prefix; the events inside a data block.

Fitted attributes end in `_`; every model has a `threshold_` on its
probability (0.5 unless tuned).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, Field

from pipa.proactive.data import Proposal

SILENT_TEXT = "(the assistant stays silent and proposes nothing)"
Progress = Callable[[int, int], None]


def context_text(p: Proposal, events: int) -> str:
    return "\n".join(e.text for e in p.events[-events:])


class EmbeddingRewardModel:
    """Logistic regression over MiniLM embeddings, one model for proposals and one for silences.

    Whether a proposal is welcome depends on how it relates to what the user
    is doing; whether silence was right depends on the events alone. One
    shared model lets the majority of proposals drown the silences (in
    ProactiveBench's data it then agrees with nearly every silence, missing
    the needs), so by default each kind gets its own classifier.

    Silence is right exactly when the user needed no help, and people label
    that need on every decision point, proposals included. With `learn_need`
    the silence classifier learns it from all of them over the events alone
    (in ProactiveBench's data that is 1,629 labelled contexts instead of 240
    silences), so it can tell a missed need even when few silences are labelled.
    """

    kind = "embedding-lr"

    def __init__(self, embedder=None, context_events: int = 3, C: float = 1.0,  # noqa: N803
                 split_silence: bool = True, learn_need: bool = True, random_state: int = 0):
        self.embedder = embedder
        self.context_events = context_events
        self.C = C
        self.split_silence = split_silence
        self.learn_need = learn_need
        self.random_state = random_state

    def _embedder(self):
        if self.embedder is None:
            from metrics.embeddings import default_embedder

            self.embedder = default_embedder()
        return self.embedder

    def _context(self, proposals: Sequence[Proposal]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        emb = self._embedder()
        ctx = emb.embed([context_text(p, self.context_events) for p in proposals])
        last = emb.embed([p.events[-1].text if p.events else "" for p in proposals])
        return ctx, last, np.log1p([[len(p.events)] for p in proposals])

    def features(self, proposals: Sequence[Proposal]) -> np.ndarray:
        ctx, last, n = self._context(proposals)
        task = self._embedder().embed([p.task or SILENT_TEXT for p in proposals])
        silent = np.array([[float(p.silent)] for p in proposals])
        length = np.log1p([[len(p.task or "")] for p in proposals])
        return np.hstack([ctx, task, ctx * task, silent, (ctx * task).sum(1, keepdims=True),
                          (last * task).sum(1, keepdims=True), n, length, last])

    def need_features(self, proposals: Sequence[Proposal]) -> np.ndarray:
        """What the user has done, without what the assistant said: all a silence can be judged on."""
        return np.hstack(self._context(proposals))

    def _silence_target(self, proposals: Sequence[Proposal]) -> tuple[np.ndarray, np.ndarray]:
        """Rows that say whether silence was right: silences by their label, proposals by the need."""
        rows = [i for i, p in enumerate(proposals) if p.silent or p.help_needed is not None]
        right = [bool(p.valid) if p.silent else not p.help_needed for p in (proposals[i] for i in rows)]
        return np.array(rows, dtype=int), np.array(right, dtype=bool)

    def _uses_need(self, name: str) -> bool:
        return name == "silence" and self.learn_need

    def _groups(self, proposals: Sequence[Proposal]) -> dict[str, np.ndarray]:
        silent = np.array([p.silent for p in proposals])
        if not self.split_silence:
            return {"all": np.ones(len(proposals), dtype=bool)}
        return {"proposal": ~silent, "silence": silent}

    def fit(self, proposals: Sequence[Proposal]) -> EmbeddingRewardModel:
        from sklearn.linear_model import LogisticRegression

        y = np.array([bool(p.valid) for p in proposals])
        if len(set(y)) < 2:
            raise ValueError("training data needs both accepted and rejected proposals")
        X = self.features(proposals)  # noqa: N806
        self.classifiers_: dict[str, object] = {}
        for name, mask in self._groups(proposals).items():
            if self._uses_need(name):
                rows, yk = self._silence_target(proposals)
                Xk = self.need_features([proposals[i] for i in rows])  # noqa: N806
            else:
                Xk, yk = X[mask], y[mask]  # noqa: N806
            if len(yk) == 0:
                continue
            if len(set(yk)) < 2:  # one kind only ever labelled one way: its base rate is all there is
                self.classifiers_[name] = float(yk.mean())
                continue
            self.classifiers_[name] = LogisticRegression(
                C=self.C, max_iter=3000, class_weight="balanced", random_state=self.random_state).fit(Xk, yk)
        self.threshold_ = 0.5
        self.n_train_ = len(y)
        return self

    def predict_proba(self, proposals: Sequence[Proposal]) -> np.ndarray:
        X = self.features(proposals)  # noqa: N806
        out = np.full(len(proposals), np.nan)
        for name, mask in self._groups(proposals).items():
            if not mask.any():
                continue
            # a kind never seen in training falls back to the other model
            key = next(k for k in (name, "all", *self.classifiers_) if k in self.classifiers_)
            clf = self.classifiers_[key]
            if isinstance(clf, float):
                out[mask] = clf
                continue
            Xk = self.need_features([p for p, m in zip(proposals, mask, strict=True) if m]) \
                if self._uses_need(key) else X[mask]  # noqa: N806
            out[mask] = clf.predict_proba(Xk)[:, 1]
        return out

    def predict(self, proposals: Sequence[Proposal]) -> np.ndarray:
        return self.predict_proba(proposals) >= self.threshold_

    def params(self) -> dict:
        return {"context_events": self.context_events, "C": self.C, "split_silence": self.split_silence,
                "learn_need": self.learn_need, "random_state": self.random_state,
                "embedding_model": getattr(self._embedder(), "name", None)}


class FineTunedRewardModel:
    """MiniLM fine-tuned as a cross-encoder: [recent events] [SEP] [proposal] -> mean pool -> logit."""

    kind = "finetuned-minilm"

    def __init__(self, model: str | None = None, context_events: int = 4, epochs: int = 3,
                 learning_rate: float = 3e-5, batch_size: int = 16, max_length: int = 192, random_state: int = 0,
                 progress: Progress | None = None):
        self.model = model
        self.context_events = context_events
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_length = max_length
        self.random_state = random_state
        self.progress = progress

    def _build(self):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from metrics.embeddings import DEFAULT_EMBEDDING_MODEL, resolve_model

        path = resolve_model(self.model or DEFAULT_EMBEDDING_MODEL)
        self.tokenizer_ = AutoTokenizer.from_pretrained(path)
        self.encoder_ = AutoModel.from_pretrained(path)
        self.head_ = torch.nn.Linear(self.encoder_.config.hidden_size, 1)

    def _logits(self, proposals: Sequence[Proposal]):

        b = self.tokenizer_([context_text(p, self.context_events) for p in proposals],
                            [p.task or SILENT_TEXT for p in proposals], truncation="only_first",
                            max_length=self.max_length, padding=True, return_tensors="pt")
        h = self.encoder_(**b).last_hidden_state
        mask = b["attention_mask"].unsqueeze(-1).to(h.dtype)
        return self.head_((h * mask).sum(1) / mask.sum(1).clamp(min=1.0)).squeeze(-1)

    def fit(self, proposals: Sequence[Proposal]) -> FineTunedRewardModel:
        import torch

        torch.manual_seed(self.random_state)
        self._build()
        y = np.array([bool(p.valid) for p in proposals], dtype=np.float32)
        if len(set(y)) < 2:
            raise ValueError("training data needs both accepted and rejected proposals")
        pos = float(y.mean())
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - pos) / pos))
        params = list(self.encoder_.parameters()) + list(self.head_.parameters())
        opt = torch.optim.AdamW(params, lr=self.learning_rate, weight_decay=0.01)
        rng = np.random.default_rng(self.random_state)
        steps = self.epochs * -(-len(y) // self.batch_size)
        done = 0
        self.encoder_.train()
        for _ in range(self.epochs):
            order = rng.permutation(len(y))
            for k in range(0, len(order), self.batch_size):
                idx = order[k:k + self.batch_size]
                opt.zero_grad()
                loss = loss_fn(self._logits([proposals[i] for i in idx]), torch.tensor(y[idx]))
                loss.backward()
                opt.step()
                done += 1
                if self.progress:
                    self.progress(done, steps)
        self.encoder_.eval()
        self.threshold_ = 0.5
        self.n_train_ = len(y)
        return self

    def predict_proba(self, proposals: Sequence[Proposal]) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for k in range(0, len(proposals), 64):
                out.append(torch.sigmoid(self._logits(list(proposals[k:k + 64]))).numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def predict(self, proposals: Sequence[Proposal]) -> np.ndarray:
        return self.predict_proba(proposals) >= self.threshold_

    def params(self) -> dict:
        return {k: getattr(self, k) for k in ("model", "context_events", "epochs", "learning_rate", "batch_size",
                                              "max_length", "random_state")}


# -- LLM ------------------------------------------------------------------------------

class RewardVerdict(BaseModel):
    accept: bool = Field(description="true if the user would accept this proposal (or, for a silence, "
                                     "if staying silent was right)")
    reason: str = Field(max_length=400, description="one sentence")


REWARD_INSTRUCTIONS = """You are the reward model of a proactive assistant. The assistant watches a user's
computer activity and, after each event, either proposes a task it could do for the user or stays silent.
Decide whether the user would accept the proposal. For a silence, decide whether staying silent was right
(accept = true) or the user needed help (accept = false). Proposals that are generic, repetitive or
unrelated to what the user is doing now are rejected.

{notice}

Labelled examples from people follow."""


class LLMRewardModel:
    kind = "llm"

    def __init__(self, llm, examples_per_category: int = 3, context_events: int = 6, random_state: int = 0):
        self.llm = llm
        self.examples_per_category = examples_per_category
        self.context_events = context_events
        self.random_state = random_state

    def fit(self, proposals: Sequence[Proposal]) -> LLMRewardModel:
        """Pick labelled examples of every category for the cached prompt prefix."""
        rng = np.random.default_rng(self.random_state)
        shots = []
        for cat in sorted({p.category for p in proposals if p.category}):
            pool = [p for p in proposals if p.category == cat]
            for i in rng.choice(len(pool), min(self.examples_per_category, len(pool)), replace=False):
                shots.append(pool[int(i)])
        self.examples_ = tuple(shots)
        self.threshold_ = 0.5
        return self

    def _rubric(self) -> str:
        from metrics.llm.prompts import data_block

        # the examples' events and proposals are recorded data: quoted, each in its own block
        parts = []
        for p in getattr(self, "examples_", ()):
            verdict = "accept" if p.valid else "reject"
            parts.append("Recent events:\n" + data_block("events", context_text(p, 3)) + "\nAssistant:\n"
                         + data_block("proposal", p.task or SILENT_TEXT) + f"\nPeople's verdict: {verdict}")
        return "\n\n".join(parts) or "(no examples)"

    def requests(self, proposals: Sequence[Proposal]):
        from metrics.llm.client import Request
        from metrics.llm.prompts import DATA_NOTICE, data_block

        rubric = self._rubric()
        for i, p in enumerate(proposals):
            user = ("Recent user events, oldest first:\n" + data_block("events", context_text(p, self.context_events))
                    + "\n\nThe assistant's response:\n" + data_block("proposal", p.task or SILENT_TEXT)
                    + "\n\nCall record_reward with your verdict.")
            yield str(i), Request(purpose="proactive-reward", tool_name="record_reward",
                                  tool_description="Record whether the user would accept the response.",
                                  schema=RewardVerdict, system=REWARD_INSTRUCTIONS.format(notice=DATA_NOTICE),
                                  rubric=rubric, user=user)

    def predict_proba(self, proposals: Sequence[Proposal], progress: Progress | None = None) -> np.ndarray:
        results = self.llm.map(list(self.requests(proposals)), progress)
        self.errors_ = {k: r.error for k, r in results.items() if not r.ok}
        # a failed item gets no verdict (NaN) rather than a made-up one
        return np.array([float(results[str(i)].value.accept) if results[str(i)].ok else np.nan
                         for i in range(len(proposals))])

    def predict(self, proposals: Sequence[Proposal]) -> np.ndarray:
        return self.predict_proba(proposals) >= self.threshold_

    def params(self) -> dict:
        return {"model": self.llm.config.model, "examples_per_category": self.examples_per_category,
                "context_events": self.context_events, "random_state": self.random_state}
