"""The hidden-state probe: a linear direction in one layer of the model that tells wrong answers from
right ones, fitted on labelled QA dev runs (``uq calibrate``; docs/evaluation.md, "Probe").

Fitting needs each labelled answer's hidden states, which runs do not record: they are recomputed here
by teacher forcing, one forward pass over the prompt and the recorded answer tokens with the generator's
own loader and prompt rendering. The feature of an answer is the mean, over its answer span, of the
hidden state at ``layer`` of the position each token was chosen from (the last prompt position for the
first token, then each answer token but the last): exactly what the transformers engine projects live
for each token (``services/generator/hf/decoding.py``), so ``mean(w · h)`` online equals ``w · mean(h)``
here. A standardised logistic regression (its strength chosen by 5-fold cross-validation on the dev
runs) gives the direction; the profile stores ``w = coef / scale`` and the intercept folded with the
means, so a projection needs no standardising.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from services.common.contracts import SamplingParams
from services.evaluation import qa
from services.evaluation.runner import records


def default_layer(num_hidden_layers: int) -> int:
    """The middle layer: where the experiment on the dev split found the signal (docs/evaluation.md)."""
    return num_hidden_layers // 2


class HiddenStates:
    """Teacher-forced hidden states of recorded answers, with the generator's loader and prompt rendering."""

    def __init__(self, model: str | None = None) -> None:
        import torch

        from services.generator.hf.loading import load
        from services.generator.settings import GeneratorSettings

        overrides: dict[str, Any] = {"model": model} if model else {}
        settings = GeneratorSettings(**overrides)
        self.lm = load(
            settings.model,
            device=settings.device,
            dtype="float32",
            load_in_8bit=False,
            model_cache_dir=settings.model_cache_dir,
        )
        self.torch = torch
        self.layers = int(self.lm.model.config.num_hidden_layers)

    @property
    def name(self) -> str:
        return str(self.lm.name)

    def _forced(self, req: qa.Request, tokens: list[dict[str, Any]], n: int) -> tuple[Any, int]:
        """Hidden states of one forward pass over the prompt of ``req`` and the first ``n - 1`` of the
        recorded ``tokens``, and the index of the position the first token was chosen from."""
        from services.generator.engine import GenerationRequest
        from services.generator.hf import decoding

        request = GenerationRequest(
            session_id="probe",
            prompt=req.prompt,
            messages=req.messages,
            sampling=SamplingParams(max_tokens=1),
            full_logits=False,
            top_k_alternatives=0,
        )
        prompt = decoding.prompt_ids(self.lm, request)
        ids = [t.get("token_id") for t in tokens[:n]]
        if any(i is None for i in ids):  # runs from before token ids were recorded: tokenise the text
            ids = self.lm.tokenizer("".join(t["text"] for t in tokens), add_special_tokens=False).input_ids[:n]
        forced = [*prompt, *[int(i or 0) for i in ids[: max(n - 1, 0)]]]
        with self.torch.inference_mode():
            out = self.lm.model(self.torch.tensor([forced], device=self.lm.device), output_hidden_states=True)
        return out.hidden_states, len(prompt) - 1

    def answer_mean(self, row: dict[str, Any], style: qa.PromptStyle, layer: int) -> np.ndarray[Any, Any]:
        """Mean hidden state at ``layer`` over the answer span's choosing positions of one recorded run."""
        item = qa.QAItem(str(row["id"]), row.get("question"), row.get("prompt"), tuple(row.get("answers") or ()))
        tokens = row.get("tokens") or []
        n = int(((row.get("summary") or {}).get("answer_scores") or {}).get("tokens") or 0) or len(tokens)
        hidden, first = self._forced(qa.request(item, style), tokens, n)
        mean: np.ndarray[Any, Any] = hidden[layer][0, first : first + max(n, 1)].float().mean(0).cpu().numpy()
        return mean

    def project(
        self, prompt: str | qa.Request, tokens: list[dict[str, Any]], section: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """``tokens`` of a generation for ``prompt`` (plain text, or a QA request), each with its live
        ``probe`` projection (what the engine would have published), by teacher forcing."""
        if not tokens:
            return tokens
        req = prompt if isinstance(prompt, qa.Request) else qa.Request(prompt, None, [])
        hidden, first = self._forced(req, tokens, len(tokens))
        h = hidden[int(section["layer"])][0, first:].float().cpu().numpy()
        values = h @ np.array(section["weights"])
        return [{**t, "probe": float(values[i])} if i < len(values) else dict(t) for i, t in enumerate(tokens)]


def fit(
    folders: list[Path],
    weights: list[float] | None = None,
    model: str | HiddenStates | None = None,
    layer: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """The profile's ``probe`` section from labelled dev folders, and each labelled row's out-of-fold
    projection (by ``"<folder>/<id>"``), the P(wrong) feature ``answer.probe`` for fitting without the
    probe having seen the row."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    states = HiddenStates(model) if not isinstance(model, HiddenStates) else model
    layer = default_layer(states.layers) if layer is None else layer
    rows: list[tuple[str, dict[str, Any], qa.PromptStyle]] = []
    for folder in folders:
        style = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("style", "fewshot")
        rows += [(f"{folder}/{r['id']}", r, style) for r in records(folder)]
    x = []
    for i, (_, row, style) in enumerate(rows):
        x.append(states.answer_mean(row, style, layer))
        if progress is not None:
            progress(i + 1, len(rows))
    features = np.array(x, dtype=np.float64)
    wrong = np.array([0 if r["correct"] else 1 for _, r, _ in rows])
    w = np.array(weights if weights is not None else [1.0] * len(rows))
    mean, scale = features.mean(axis=0), features.std(axis=0)
    scale[scale == 0] = 1.0
    z = (features - mean) / scale
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    chooser = LogisticRegressionCV(Cs=[0.003, 0.01, 0.03, 0.1, 0.3], cv=cv, scoring="roc_auc", max_iter=3000)
    with warnings.catch_warnings():  # scikit-learn 1.9 announces attribute changes of LogisticRegressionCV
        warnings.simplefilter("ignore", FutureWarning)
        chooser.fit(z, wrong, sample_weight=w)
    c = float(chooser.C_[0])
    lr = LogisticRegression(C=c, max_iter=3000)
    out_of_fold = cross_val_predict(lr, z, wrong, cv=cv, method="decision_function", params={"sample_weight": w})
    lr.fit(z, wrong, sample_weight=w)
    direction = lr.coef_[0] / scale
    intercept = float(lr.intercept_[0] - float(np.dot(lr.coef_[0], mean / scale)))
    section = {
        "layer": layer,
        "weights": [float(v) for v in direction],
        "intercept": intercept,
        "fitted_on": {"items": len(rows), "wrong": int(wrong.sum()), "C": c, "model": states.name},
    }
    # out of fold, on the projection's scale (decision = w·h + intercept): the feature is w·h
    projections = {key: float(v) - intercept for (key, _, _), v in zip(rows, out_of_fold, strict=True)}
    return section, projections
