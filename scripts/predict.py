#!/usr/bin/env python3
"""Send a review to the API and print the answer.

  python scripts/predict.py "A wonderful, moving film."                 # local mode (make local)
  python scripts/predict.py --explain --file review.txt                 # per-word explanation
  echo "Dull and far too long." | python scripts/predict.py             # from stdin
  python scripts/predict.py --stack ImdbSentiment-Api "Great acting."    # a deployed stack's API
  python scripts/predict.py --url https://d123.cloudfront.net/api "Great acting."

The API is ``POST {apiUrl}/predict`` with ``{"text": ..., "explain": ...}`` (docs/architecture.md).
With ``--stack``, ``apiUrl`` is the stack's CloudFormation output ``ApiUrl`` (boto3, your usual AWS
credentials and region). Exit codes: 0 answer printed, 1 the API answered with an error or could not be
reached, 2 bad usage.
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"
OUTPUT_KEY = "ApiUrl"
TOP_N = 5


class CliError(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def api_url_from_stack(stack: str, region: str | None = None, client=None) -> str:
    """The ``ApiUrl`` output of a deployed CloudFormation stack."""
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise CliError("--stack needs boto3: run this with the project's virtualenv (.venv/bin/python)", 2)
    try:
        cfn = client or boto3.client("cloudformation", region_name=region)
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise CliError(f"cannot read stack {stack!r}: {message} (is it deployed in this region? "
                       "--region, AWS_REGION)") from None
    except BotoCoreError as exc:
        raise CliError(f"cannot reach CloudFormation: {exc} (AWS credentials and region configured?)") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (stacks[0].get("Outputs") or [])} if stacks else {}
    if OUTPUT_KEY in outputs:
        return outputs[OUTPUT_KEY]
    # CDK names outputs of nested constructs with a hash suffix: accept one unambiguous match.
    matches = [k for k in outputs if OUTPUT_KEY in k]
    if len(matches) == 1:
        return outputs[matches[0]]
    raise CliError(f"stack {stack!r} has no {OUTPUT_KEY} output (outputs: {', '.join(sorted(outputs)) or 'none'}); "
                   "is it the API stack?")


def predict(api_url: str, text: str, explain: bool, timeout: float) -> dict:
    url = api_url.rstrip("/") + "/predict"
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--url must start with http:// or https:// (got {api_url!r})", 2)
    body = json.dumps({"text": text, "explain": explain}).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json",
                                              "User-Agent": "imdb-sentiment-predict"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    except (socket.timeout, TimeoutError):
        raise CliError(f"{url} did not answer within {timeout:g}s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        hint = " Is local mode running (make local)?" if "127.0.0.1" in url or "localhost" in url else ""
        raise CliError(f"cannot reach {url}: {reason}.{hint}") from None
    except OSError as exc:
        raise CliError(f"cannot reach {url}: {exc}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if status >= 400:
        message = None
        if isinstance(data, dict):
            message = data.get("error") or data.get("message")
        message = message or raw.decode("utf-8", "replace").strip()[:300] or "no details"
        raise CliError(f"the API answered {status}: {message}")
    if not (isinstance(data, dict) and data.get("label") in ("positive", "negative")
            and isinstance(data.get("score"), (int, float))):
        raise CliError(f"the API answered {status} with something that is not a prediction: "
                       f"{raw.decode('utf-8', 'replace')[:200]!r}")
    return data


def top_words(explanation, n: int = TOP_N) -> tuple[list, list]:
    scored = [(e["word"], e["weight"]) for e in explanation or []
              if isinstance(e, dict) and isinstance(e.get("word"), str)
              and isinstance(e.get("weight"), (int, float)) and not isinstance(e.get("weight"), bool)]
    best: dict[str, float] = {}
    for word, weight in scored:  # one line per word: its strongest occurrence
        if word not in best or abs(weight) > abs(best[word]):
            best[word] = weight
    positive = sorted(((w, v) for w, v in best.items() if v > 0), key=lambda x: -x[1])[:n]
    negative = sorted(((w, v) for w, v in best.items() if v < 0), key=lambda x: x[1])[:n]
    return positive, negative


def format_answer(data: dict) -> str:
    if data.get("words_read") == 0:  # the score is the model's answer to an empty review
        return ("no words read: the model ignores stop words, emoji and symbols, and this review has "
                "nothing else, so its score means nothing. Write a few words about the film.")
    lines = [f"{data['label']}  (probability positive: {data['score']:.3f})"]
    if "explanation" in data:
        positive, negative = top_words(data["explanation"])
        # weights are changes of the model's log-odds
        lines.append("  towards positive: " + (", ".join(f"{w} {v:+.2g}" for w, v in positive) or "none"))
        lines.append("  towards negative: " + (", ".join(f"{w} {v:+.2g}" for w, v in negative) or "none"))
        lines.append("  (change of the model's log-odds when the word is left out)")
    return "\n".join(lines)


def read_review(args: argparse.Namespace) -> str:
    if args.text and args.file:
        raise CliError("give the review either as an argument or with --file, not both", 2)
    if args.file:
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read {args.file}: {exc}", 2) from None
    elif args.text:
        text = " ".join(args.text)
    elif not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        raise CliError("no review given: pass it as an argument, with --file PATH, or on stdin", 2)
    if not text.strip():
        raise CliError("the review is empty", 2)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", nargs="*", help="the review (default: --file, or stdin)")
    p.add_argument("--file", "-f", help="read the review from this file")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--url", help=f"the API base URL (default {DEFAULT_URL}, local mode)")
    target.add_argument("--stack", help=f"a deployed stack whose '{OUTPUT_KEY}' output is the API")
    p.add_argument("--region", help="AWS region of --stack (default: your AWS configuration)")
    p.add_argument("--explain", action="store_true", help="ask for, and print, the words that decided")
    p.add_argument("--json", action="store_true", help="print the API's JSON answer as it is")
    p.add_argument("--timeout", type=float, default=35.0, help="seconds to wait for the answer")
    args = p.parse_args(argv)
    try:
        text = read_review(args)
        api_url = api_url_from_stack(args.stack, args.region) if args.stack else (args.url or DEFAULT_URL)
        data = predict(api_url, text, args.explain, args.timeout)
    except CliError as exc:
        print(f"predict: error: {exc}", file=sys.stderr)
        return exc.code
    print(json.dumps(data, ensure_ascii=False) if args.json else format_answer(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
