"""Trained reward models as versioned artefacts.

A model is saved under `<models dir>/<name>/v<version>/` with a manifest
(kind, parameters, the training data's hash, its cross-validated metrics)
and registered in the store's `reward_models` table, so a score can always
be traced to the exact model and data behind it. Versions only grow.

The folder also goes into the store itself (`model_files`, a compressed
archive), so a machine sharing the store but not the disk it was trained on
(a scoring worker on a lake) unpacks it into its own models folder on first use.

An artefact is data, never code: anyone who can write one row of a shared
store must not run code on every worker. Coefficients and thresholds are
JSON (`model.json`), a fine-tuned encoder and its head are safetensors, a
tokenizer its own JSON files. Nothing is unpickled: a folder with anything
else (a `model.pkl` from before this format, say) is refused, and names that
become paths are checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from traces.store import Store


STATE = "model.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class UnsafeArtefact(ValueError):
    """A stored model that is not plain data in Libra's format, or a name that would leave its folder."""


def check_name(name: str) -> str:
    if not _NAME.match(name or "") or ".." in name:
        raise UnsafeArtefact(f"{name!r} is not a model name: letters, digits, '.', '_' and '-', at most 64")
    return name


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
    check_name(name)
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


def _classifier_state(clf: object) -> dict:
    if isinstance(clf, float):
        return {"kind": "constant", "p": clf}
    return {"kind": "logistic", "coef": clf.coef_.tolist(), "intercept": clf.intercept_.tolist(),
            "classes": [bool(c) for c in clf.classes_]}


def _classifier(state: dict) -> object:
    if state.get("kind") == "constant":
        return float(state["p"])
    if state.get("kind") != "logistic":
        raise UnsafeArtefact(f"unknown classifier kind {state.get('kind')!r}")
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression()
    clf.coef_ = np.asarray(state["coef"], dtype=float)
    clf.intercept_ = np.asarray(state["intercept"], dtype=float)
    clf.classes_ = np.asarray(state["classes"], dtype=bool)
    clf.n_features_in_ = clf.coef_.shape[1]
    return clf


def _dump(model, path: Path) -> None:
    if model.kind == "finetuned-minilm":
        from safetensors.torch import save_file

        model.encoder_.save_pretrained(path / "encoder", safe_serialization=True)
        model.tokenizer_.save_pretrained(path / "encoder")
        save_file({k: v.contiguous() for k, v in model.head_.state_dict().items()}, str(path / "head.safetensors"))
        state = {"params": model.params(), "threshold_": model.threshold_, "n_train_": model.n_train_}
    elif model.kind == "embedding-lr":
        state = {"params": model.params(), "threshold_": model.threshold_, "n_train_": model.n_train_,
                 "classifiers_": {k: _classifier_state(c) for k, c in model.classifiers_.items()}}
    else:
        raise ValueError(f"{model.kind} models are prompts, not artefacts: nothing to save")
    (path / STATE).write_text(json.dumps(state, default=str))


# What a model folder may hold: its state, its manifest, a fine-tuned encoder's safetensors and
# tokenizer and config files. Anything else in an archive or a folder is refused before use.
_ALLOWED = re.compile(r"^(model\.json|manifest\.json|head\.safetensors|encoder/[A-Za-z0-9_.-]+\."
                      r"(json|safetensors|txt|model))$")


def _check_folder(path: Path) -> None:
    for f in path.rglob("*"):
        rel = f.relative_to(path).as_posix()
        if f.is_file() and not _ALLOWED.match(rel):
            raise UnsafeArtefact(f"{path}: {rel} is not part of a Libra model (models hold JSON and safetensors "
                                 "only; a model saved as a pickle by an older Libra must be trained again)")
        if f.is_symlink():
            raise UnsafeArtefact(f"{path}: {rel} is a link")


def _pack(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in sorted(path.rglob("*")):
            if f.is_file():
                tar.add(f, arcname=str(f.relative_to(path)))
    return buf.getvalue()


def _local_copy(store: Store, model_id: str, name: str, version: int, path: Path) -> Path:
    """The model's folder on this machine: where it was saved, or unpacked from the store."""
    if (path / STATE).exists() or (path / "model.pkl").exists():
        return path
    here = models_dir(store) / check_name(name) / f"v{int(version)}"
    if (here / STATE).exists() or (here / "model.pkl").exists():
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
        for member in tar.getmembers():
            if not (member.isfile() or member.isdir()) or (member.isfile() and not _ALLOWED.match(member.name)):
                shutil.rmtree(tmp, ignore_errors=True)
                raise UnsafeArtefact(f"{model_id}: the archive in the store holds {member.name!r}, which is not part "
                                     "of a Libra model; it was not unpacked")
        tar.extractall(tmp, filter="data")  # and confined to the folder: no absolute paths, no '..'
    try:
        os.replace(tmp, here)
    except OSError:  # another process unpacked it first
        shutil.rmtree(tmp, ignore_errors=True)
    return here


def list_models(store: Store):
    return store.df("SELECT model_id, name, version, kind, data_hash, metrics, path, created_at "
                    "FROM reward_models ORDER BY name, version")


def load(store: Store, name: str, version: int | None = None, embedder=None):
    """A saved model by name (newest version unless given), ready to predict.

    UnsafeArtefact when what is stored is not plain data in Libra's format.
    """
    check_name(name)
    row = store.execute(
        "SELECT version, kind, path FROM reward_models WHERE name = ? AND (? IS NULL OR version = ?) "
        "ORDER BY version DESC LIMIT 1", [name, version, version])
    if not row:
        raise KeyError(f"no reward model {name!r}" + (f" version {version}" if version else ""))
    version_found, kind, path = row[0]
    path = _local_copy(store, f"{name}@v{version_found}", name, version_found, Path(path))
    _check_folder(path)
    state = json.loads((path / STATE).read_text())
    from pipa.proactive.reward import EmbeddingRewardModel, FineTunedRewardModel

    p = dict(state["params"])
    if kind == "embedding-lr":
        p.pop("embedding_model", None)
        p.setdefault("learn_need", False)  # saved before silences learned the need: their classifier reads all features
        model = EmbeddingRewardModel(embedder=embedder, **p)
        model.classifiers_ = {k: _classifier(c) for k, c in state["classifiers_"].items()}
    elif kind == "finetuned-minilm":
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        model = FineTunedRewardModel(**p)
        model.tokenizer_ = AutoTokenizer.from_pretrained(path / "encoder")
        model.encoder_ = AutoModel.from_pretrained(path / "encoder", use_safetensors=True).eval()
        model.head_ = torch.nn.Linear(model.encoder_.config.hidden_size, 1)
        model.head_.load_state_dict(load_file(str(path / "head.safetensors")))
    else:
        raise UnsafeArtefact(f"unknown reward model kind {kind!r}: refused")
    model.threshold_ = state["threshold_"]
    model.n_train_ = state["n_train_"]
    model.model_id_ = f"{name}@v{row[0][0]}"
    return model
