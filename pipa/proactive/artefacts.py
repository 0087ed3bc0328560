"""Trained reward models as versioned artefacts.

A model is saved under `<models dir>/<name>/v<version>/` with a manifest
(kind, parameters, the training data's hash, its cross-validated metrics)
and registered in the store's `reward_models` table, so a score can always
be traced to the exact model and data behind it. Versions only grow.

The folder also goes into the store itself (`model_files`, a compressed
archive), so a machine sharing the store but not the disk it was trained on
(a scoring worker on a lake) unpacks it into its own models folder on first use.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from traces.store import Store


def models_dir(store: Store) -> Path:
    env = os.environ.get("LIBRA_MODELS_DIR")
    if env:
        return Path(env)
    return store.local_dir / "libra_models"


def save(store: Store, model, name: str, *, data_hash: str, metrics: dict | None = None,
         root: Path | None = None) -> dict:
    """Persist a fitted model as the next version of `name`; returns its manifest.

    The files are written to a private folder first and moved to `vN` once version
    N is committed: on a lake two processes may try for the same N, and the one
    run again (`Store.write`) must not have written into the winner's folder.
    """
    root = root or models_dir(store)
    staging = root / name / f".new.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        _dump(model, staging)

        def once(con) -> dict:
            latest = con.execute("SELECT max(version) FROM reward_models WHERE name = ?", [name]).fetchone()[0]
            version = (latest or 0) + 1
            path = root / name / f"v{version}"
            manifest = {"model_id": f"{name}@v{version}", "name": name, "version": version, "kind": model.kind,
                        "data_hash": data_hash, "params": model.params(), "metrics": metrics or {},
                        "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "path": str(path)}
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
            archive = _pack(staging)
            con.execute("INSERT INTO model_files VALUES (?, ?, ?, ?)",
                        [manifest["model_id"], archive, hashlib.sha256(archive).hexdigest(), len(archive)])
            con.execute("INSERT INTO reward_models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [manifest["model_id"], name, version, model.kind, data_hash,
                         json.dumps(manifest["params"], default=str), json.dumps(metrics or {}, default=str),
                         str(path), datetime.now(UTC).replace(tzinfo=None)])
            return manifest

        manifest = store.write(once, serialise="reward_models")
        path = Path(manifest["path"])
        if path.exists():  # left by a save that never committed: version N is this one's now
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _dump(model, path: Path) -> None:
    if model.kind == "finetuned-minilm":
        import torch

        model.encoder_.save_pretrained(path / "encoder")
        model.tokenizer_.save_pretrained(path / "encoder")
        torch.save(model.head_.state_dict(), path / "head.pt")
        state = {"params": model.params(), "threshold_": model.threshold_, "n_train_": model.n_train_}
    elif model.kind == "embedding-lr":
        state = {"params": model.params(), "classifiers_": model.classifiers_, "threshold_": model.threshold_,
                 "n_train_": model.n_train_}
    else:
        raise ValueError(f"{model.kind} models are prompts, not artefacts: nothing to save")
    with (path / "model.pkl").open("wb") as f:
        pickle.dump(state, f)


def _pack(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in sorted(path.rglob("*")):
            if f.is_file():
                tar.add(f, arcname=str(f.relative_to(path)))
    return buf.getvalue()


def _local_copy(store: Store, model_id: str, name: str, version: int, path: Path) -> Path:
    """The model's folder on this machine: where it was saved, or unpacked from the store."""
    if (path / "model.pkl").exists():
        return path
    here = models_dir(store) / name / f"v{version}"
    if (here / "model.pkl").exists():
        return here
    row = store.execute("SELECT archive, sha256 FROM model_files WHERE model_id = ?", [model_id])
    if not row:
        raise FileNotFoundError(f"{model_id}: no files at {path}, and none kept in the store")
    archive, digest = row[0]
    if hashlib.sha256(archive).hexdigest() != digest:
        raise ValueError(f"{model_id}: the archive in the store is damaged (checksum differs)")
    tmp = here.with_name(f".{here.name}.{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(tmp, filter="data")  # our own archive, still unpacked as plain data only
    try:
        os.replace(tmp, here)
    except OSError:  # another process unpacked it first
        shutil.rmtree(tmp, ignore_errors=True)
    return here


def list_models(store: Store):
    return store.df("SELECT model_id, name, version, kind, data_hash, metrics, path, created_at "
                    "FROM reward_models ORDER BY name, version")


def load(store: Store, name: str, version: int | None = None, embedder=None):
    """A saved model by name (newest version unless given), ready to predict."""
    row = store.execute(
        "SELECT version, kind, path FROM reward_models WHERE name = ? AND (? IS NULL OR version = ?) "
        "ORDER BY version DESC LIMIT 1", [name, version, version])
    if not row:
        raise KeyError(f"no reward model {name!r}" + (f" version {version}" if version else ""))
    version_found, kind, path = row[0]
    path = _local_copy(store, f"{name}@v{version_found}", name, version_found, Path(path))
    with (path / "model.pkl").open("rb") as f:
        state = pickle.load(f)  # noqa: S301 - our own artefact, written by save()
    from pipa.proactive.reward import EmbeddingRewardModel, FineTunedRewardModel

    p = dict(state["params"])
    if kind == "embedding-lr":
        p.pop("embedding_model", None)
        p.setdefault("learn_need", False)  # saved before silences learned the need: their classifier reads all features
        model = EmbeddingRewardModel(embedder=embedder, **p)
        model.classifiers_ = state["classifiers_"]
    elif kind == "finetuned-minilm":
        import torch
        from transformers import AutoModel, AutoTokenizer

        model = FineTunedRewardModel(**p)
        model.tokenizer_ = AutoTokenizer.from_pretrained(path / "encoder")
        model.encoder_ = AutoModel.from_pretrained(path / "encoder").eval()
        model.head_ = torch.nn.Linear(model.encoder_.config.hidden_size, 1)
        model.head_.load_state_dict(torch.load(path / "head.pt"))
    else:
        raise ValueError(f"unknown reward model kind {kind!r}")
    model.threshold_ = state["threshold_"]
    model.n_train_ = state["n_train_"]
    model.model_id_ = f"{name}@v{row[0][0]}"
    return model
