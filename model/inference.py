"""SageMaker inference handlers: ``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``.

The signatures are those of the SageMaker PyTorch inference toolkit, so this module also runs in AWS's
prebuilt PyTorch image; our own ``serve`` calls the same functions. The endpoint contract
(docs/architecture.md):

  text/plain (UTF-8)                  the review itself
  application/json {"text": "..."}    one review      -> {"label": "positive", "score": 0.93, "words_read": 41}
  application/json {"instances": [...]} 1..64 reviews -> {"predictions": [{...}, ...]}
  "explain": true on either JSON form adds "explanation": [{"word": w, "weight": x | null}, ...]

Bad input raises ``RequestError`` carrying the HTTP status and a message a person can act on: 415
unsupported content type; 400 empty or whitespace-only text, invalid UTF-8, malformed JSON, wrong
types; 413 body over ``MAX_BODY_BYTES`` or more than ``MAX_INSTANCES`` instances (model/contract.py).

One data path: raw review -> tokens -> ids -> tensor -> probability -> JSON.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .contract import JSON_TYPE, MAX_BODY_BYTES, MAX_INSTANCES, STATUS_PHRASES, TEXT_TYPE

_UTF8_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_DIGITS = 6  # scores and weights are rounded to this many decimals

try:  # inside AWS's prebuilt image, the toolkit turns this base class into the HTTP status
    from sagemaker_inference.errors import BaseInferenceToolkitError as _ToolkitError  # type: ignore
except ImportError:  # our own image: no toolkit
    class _ToolkitError(Exception):  # type: ignore[no-redef]
        pass


class RequestError(ValueError, _ToolkitError):
    """The caller's mistake: an HTTP status (4xx) and a message for the caller."""

    def __init__(self, status: int, message: str):
        ValueError.__init__(self, message)
        self.status = self.status_code = status
        self.message = message
        self.phrase = STATUS_PHRASES.get(status, "Bad Request")

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Request:
    """A parsed request: the reviews, whether the caller sent the batch form, and explain."""

    texts: tuple[str, ...]
    batch: bool = False
    explain: bool = False


# --------------------------------------------------------------------------- model_fn

def model_fn(model_dir: str):
    """The ``Artifact`` in the model directory written by ``train`` (its network in eval mode).

    Raises ``model.artifact.ArtifactError`` saying which file is missing or corrupt."""
    from .artifact import load

    return load(model_dir)


# --------------------------------------------------------------------------- input_fn

def input_fn(request_body: bytes | bytearray | memoryview | str, request_content_type: str | None) -> Request:
    """Parse and validate a request body; raises ``RequestError`` for anything the contract refuses."""
    media, params = _media_type(request_content_type)
    if media not in (TEXT_TYPE, JSON_TYPE):
        shown = (request_content_type or "").strip()[:100] or "none"
        raise RequestError(415, f"unsupported Content-Type {shown!r}: send the review as text/plain "
                                "(UTF-8) or as application/json {\"text\": \"...\"}")
    if isinstance(request_body, str):
        size = len(request_body.encode("utf-8", "surrogatepass"))
        text = request_body
    else:
        raw = bytes(request_body)
        size = len(raw)
        if size > MAX_BODY_BYTES:
            raise RequestError(413, _too_large(size))
        charset = params.get("charset", "utf-8").lower()
        if charset not in _UTF8_CHARSETS:
            raise RequestError(415, f"unsupported charset {charset!r}: send the body as UTF-8")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(400, f"the body is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
                                    f"position {exc.start}): send UTF-8 text") from None
    if size > MAX_BODY_BYTES:
        raise RequestError(413, _too_large(size))
    if media == TEXT_TYPE:
        return Request(texts=(_review(text, "the review"),))
    return _parse_json(text)


def _media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    if not content_type:
        return "", {}
    media, *rest = content_type.split(";")
    params = {}
    for item in rest:
        key, _, value = item.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), params


def _too_large(size: int) -> str:
    return (f"the body is {size} bytes; the limit is {MAX_BODY_BYTES} bytes: send a shorter review "
            "or fewer instances")


def _review(text: Any, what: str) -> str:
    if not isinstance(text, str):
        raise RequestError(400, f"{what} must be a string, not {_json_type(text)}")
    if not text.strip():
        raise RequestError(400, f"{what} is empty or only whitespace: send the text of a review")
    return text


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _parse_json(text: str) -> Request:
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        payload = json.loads(text)
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply") from None
    except ValueError as exc:
        raise RequestError(400, f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise RequestError(400, "the JSON body must be an object: {\"text\": \"...\"} or "
                                f"{{\"instances\": [\"...\", ...]}}, not {_json_type(payload)}")
    explain = payload.get("explain", False)
    if explain is None:
        explain = False
    if not isinstance(explain, bool):
        raise RequestError(400, f"field 'explain' must be true or false, not {_json_type(explain)}")
    has_text, has_instances = "text" in payload, "instances" in payload
    if has_text and has_instances:
        raise RequestError(400, "send either 'text' or 'instances', not both")
    if has_text:
        return Request(texts=(_review(payload["text"], "field 'text'"),), explain=explain)
    if has_instances:
        instances = payload["instances"]
        if not isinstance(instances, list):
            raise RequestError(400, f"field 'instances' must be an array of strings, not {_json_type(instances)}")
        if not instances:
            raise RequestError(400, "field 'instances' is empty: send 1 to 64 reviews")
        if len(instances) > MAX_INSTANCES:
            raise RequestError(413, f"{len(instances)} instances; the limit is {MAX_INSTANCES} per "
                                    "request: split the batch")
        texts = tuple(_review(t, f"instances[{i}]") for i, t in enumerate(instances))
        return Request(texts=texts, batch=True, explain=explain)
    raise RequestError(400, "the JSON body needs a field 'text' (a review) or 'instances' (a list of "
                            "reviews)")


# --------------------------------------------------------------------------- predict_fn

def predict_fn(input_data: Request, model) -> dict[str, Any]:
    """The answer for one parsed request, ready for JSON (``model``: what ``model_fn`` returned)."""
    return predict_many([input_data], model)[0]


def predict_many(requests: list[Request], model) -> list[dict[str, Any]]:
    """Answers for several parsed requests: their plain reviews all go through one forward pass."""
    import torch

    with torch.inference_mode():
        plain = [model.encode(text) for r in requests if not r.explain for text in r.texts]
        scores = iter(zip(probabilities(model.model, plain), map(len, plain)) if plain else [])
        answers = []
        for r in requests:
            if r.explain:
                from .explain import explain
                results = []
                for text in r.texts:
                    score, entries = explain(model, text, _DIGITS)
                    result = _label(score, sum(e["weight"] is not None for e in entries))
                    result["explanation"] = entries
                    results.append(result)
            else:
                results = [_label(*next(scores)) for _ in r.texts]
            answers.append({"predictions": results} if r.batch else results[0])
    return answers


def probabilities(network, sequences: list[list[int]]) -> list[float]:
    """P(positive) per id list. A batch is padded to its longest review, so reviews of very
    different lengths go in separate passes (similar lengths: within 1.5x of the group's shortest)."""
    import torch

    from .network import pad_batch, pad_to_bucket

    if not sequences:
        return []
    out = [0.0] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    groups: list[list[int]] = []
    for i in order:
        if groups and len(sequences[i]) <= 1.5 * max(1, len(sequences[groups[-1][0]])):
            groups[-1].append(i)
        else:
            groups.append([i])
    with torch.inference_mode():
        for group in groups:
            ids, lengths = pad_batch([sequences[i] for i in group])
            probs = torch.sigmoid(network(pad_to_bucket(ids), lengths)).tolist()
            for i, p in zip(group, probs):
                out[i] = p
    return out


def _label(probability: float, words_read: int) -> dict[str, Any]:
    """``words_read`` = 0: the model read nothing (only stopwords, emoji, symbols), and its score is
    what it answers for an empty review; the caller is told rather than shown a confident label."""
    score = round(probability, _DIGITS)
    return {"label": "positive" if score >= 0.5 else "negative", "score": score, "words_read": words_read}


# --------------------------------------------------------------------------- output_fn

def output_fn(prediction: Any, accept: str | None = None) -> tuple[bytes, str]:
    """(JSON body, content type). Answers are always JSON, whatever ``accept`` asks for: it is the
    only format the contract defines. The toolkit reads the tuple's second item as Content-Type."""
    return json.dumps(prediction, separators=(",", ":")).encode(), JSON_TYPE


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}, separators=(",", ":")).encode()
