"""scripts/predict.py: the CLI against the local API (in-process front + real handler: ``inprocess_api``)
and a stack's API."""
from __future__ import annotations

import json
import subprocess

import pytest

from fixtures_local import PYTHON, REPO, child_env, load_module

predict = load_module("predict_under_test", REPO / "scripts" / "predict.py")


def test_prints_label_and_score(inprocess_api, capsys):
    url, _ = inprocess_api
    assert predict.main(["--url", url, "A", "superb", "film"]) == 0
    out = capsys.readouterr().out.splitlines()[-1]  # the handler's JSON log line comes first
    assert out.startswith("positive") and "0.667" in out


def test_explain_prints_top_words(inprocess_api, capsys):
    url, fake = inprocess_api
    assert predict.main(["--url", url + "/", "--explain", "superb acting, awful plot, wonderful music"]) == 0
    out = capsys.readouterr().out
    assert "towards positive: superb +0.2, wonderful +0.2" in out
    assert "towards negative: awful -0.2" in out
    assert json.loads(fake.bodies[-1][1])["explain"] is True


def test_no_words_read_is_said_not_shown_as_a_label():
    answer = predict.format_answer({"label": "negative", "score": 0.499865, "words_read": 0})
    assert answer.startswith("no words read") and "negative" not in answer
    assert predict.format_answer({"label": "negative", "score": 0.2, "words_read": 3}).startswith("negative")


def test_json_output_and_file_input(inprocess_api, capsys, tmp_path):
    url, _ = inprocess_api
    review = tmp_path / "review.txt"
    review.write_text("A dull, boring film.\n", encoding="utf-8")
    assert predict.main(["--url", url, "--json", "--file", str(review)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"label": "negative", "score": 0.25}


def test_stdin_in_a_subprocess(inprocess_api):
    url, _ = inprocess_api
    proc = subprocess.run([PYTHON, str(REPO / "scripts" / "predict.py"), "--url", url], input="superb",
                          capture_output=True, text=True, timeout=30, env=child_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("positive")


def test_api_errors_are_printed_with_the_message(inprocess_api, capsys):
    url, fake = inprocess_api
    fake.mode, fake.status, fake.message = "status", 400, "the review has no words the model knows"
    assert predict.main(["--url", url, "zzz"]) == 1
    err = capsys.readouterr().err
    assert "the API answered 400: the review has no words the model knows" in err
    fake.status = 500
    assert predict.main(["--url", url, "zzz"]) == 1
    assert "the API answered 502" in capsys.readouterr().err


@pytest.mark.parametrize("argv, code, needle", [
    (["--url", "http://127.0.0.1:9", "x"], 1, "Is local mode running"),
    (["--url", "ftp://x", "x"], 2, "http://"),
    (["--url", "http://127.0.0.1:9", "   "], 2, "empty"),
    (["--url", "http://127.0.0.1:9", "--file", "/nonexistent/review.txt"], 2, "cannot read"),
    (["--url", "http://127.0.0.1:9", "--file", "/dev/null", "also text"], 2, "not both"),
])
def test_usage_errors(argv, code, needle, capsys):
    assert predict.main(argv) == code
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_timeout_is_reported(inprocess_api, capsys):
    url, fake = inprocess_api
    fake.mode, fake.delay = "slow", 1.5
    assert predict.main(["--url", url, "--timeout", "0.3", "x"]) == 1
    assert "did not answer within 0.3s" in capsys.readouterr().err


def test_api_url_from_a_deployed_stack(inprocess_api, capsys, monkeypatch):
    """--stack reads the ApiUrl output with DescribeStacks (botocore Stubber: no AWS account here)."""
    import boto3
    from botocore.stub import Stubber
    url, _ = inprocess_api
    cfn = boto3.client("cloudformation", region_name="eu-west-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    created = []

    def fake_client(service, region_name=None, **kwargs):
        created.append((service, region_name))
        return cfn

    monkeypatch.setattr(boto3, "client", fake_client)

    def stack(name, outputs):
        return {"Stacks": [{"StackName": name, "CreationTime": "2026-01-01T00:00:00Z",
                            "StackStatus": "CREATE_COMPLETE",
                            "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]}]}

    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", stack("ImdbApi", {"ApiUrl": url + "/", "SiteUrl": "https://x"}),
                          {"StackName": "ImdbApi"})
        stub.add_response("describe_stacks", stack("ImdbSite", {"SiteUrl": "https://x"}), {"StackName": "ImdbSite"})
        stub.add_client_error("describe_stacks", "ValidationError", "Stack with id Missing does not exist")
        assert predict.main(["--stack", "ImdbApi", "--region", "eu-west-1", "superb"]) == 0
        assert capsys.readouterr().out.splitlines()[-1].startswith("positive")
        assert created[-1] == ("cloudformation", "eu-west-1")
        assert predict.main(["--stack", "ImdbSite", "superb"]) == 1
        assert "has no ApiUrl output (outputs: SiteUrl)" in capsys.readouterr().err
        assert predict.main(["--stack", "Missing", "superb"]) == 1
        assert "cannot read stack 'Missing': Stack with id Missing does not exist" in capsys.readouterr().err
        stub.assert_no_pending_responses()


def test_cdk_style_output_names_are_found():
    class Fake:
        def describe_stacks(self, StackName):
            return {"Stacks": [{"Outputs": [{"OutputKey": "ApiApiUrl1A2B3C4D", "OutputValue": "https://a/"},
                                            {"OutputKey": "Other", "OutputValue": "x"}]}]}
    assert predict.api_url_from_stack("S", client=Fake()) == "https://a/"
