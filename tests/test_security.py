"""Security properties that no other test states on its own (docs/reliability.md, "Security").

* Model loading never unpickles: no pickle-family import, no ``torch.load`` without
  ``weights_only=True`` (nor ``torch.save``, which writes pickle) anywhere in the repository's Python;
  no pickle files in the repository; the artifact is safetensors + JSON and loads with pickle disabled;
  a pickle planted as ``model.safetensors`` is refused without running.
* The page's Content-Security-Policy (the CloudFront response-headers policy in the synthesized site
  stack and the local front's header) forbids inline script and third-party origins, and the page
  itself needs neither.
* No CORS ``*`` anywhere in the synthesized app; no full-service wildcard action or ``*`` principal
  in any Allow statement (CDK-generated roles included); every bucket private and SSL-only.

Already covered elsewhere and not repeated here: no wildcard actions in our own roles and ``*``
resources only for actions without resource-level permissions (tests/test_stacks_app.py, both
apps); cdk-nag clean with reasoned acknowledgements (tests/test_stacks_app.py); API throttling, the
request size limit in the request model, no OPTIONS method (tests/test_stacks_api.py); the proxy
ignores ``ALLOWED_ORIGIN=*`` (tests/test_proxy_handler.py); review and server-answer markup shown as
text in a real browser (tests/test_browser.py ``test_review_markup_is_shown_as_text_and_never_runs``,
``test_hostile_server_answers_are_shown_as_text``).
"""
from __future__ import annotations

import ast
import json
import struct
import subprocess
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cdk_support import REPO, app_default  # noqa: F401  (fixture)

PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve", "marshal",
                  "pickletools", "copyreg"}
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib", ".npy", ".npz", ".bin", ".h5")


def repo_files(pattern: str | None = None) -> list[Path]:
    """Tracked files and untracked ones git does not ignore (work in progress counts too)."""
    cmd = ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard"]
    names = subprocess.run(cmd + ([pattern] if pattern else []), capture_output=True, text=True,
                           check=True).stdout.splitlines()
    return [REPO / n for n in sorted(set(names)) if (REPO / n).is_file()]


# --------------------------------------------------------------------------- no pickle

def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _keyword_is(call: ast.Call, name: str, value) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value
               for k in call.keywords)


# Conventional short names, for code that uses them without importing them in the same file.
_CONVENTIONAL = {"np": "numpy", "pd": "pandas"}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> what it was imported as: ``import torch as t`` gives t -> torch, ``from torch
    import load as l`` gives l -> torch.load. Calls are judged by what they call, not by its name."""
    names = dict(_CONVENTIONAL)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    names[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def unsafe_deserialization(source: str, filename: str) -> list[str]:
    """Every pickle-family import and every call that unpickles or writes pickle, with its line."""
    found = []
    tree = ast.parse(source, filename)
    aliases = _aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{filename}:{node.lineno} import {a.name}" for a in node.names
                      if a.name.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLE_MODULES:
            found.append(f"{filename}:{node.lineno} from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            head, _, rest = name.partition(".")
            full = aliases.get(head, head) + ("." + rest if rest else "")
            if full == "torch.load" and not _keyword_is(node, "weights_only", True):
                found.append(f"{filename}:{node.lineno} torch.load without weights_only=True ({name})")
            elif full in ("torch.save", "torch.jit.load", "torch.package.PackageImporter",
                          "pandas.read_pickle", "yaml.unsafe_load") or name.endswith("__reduce__"):
                found.append(f"{filename}:{node.lineno} {full} ({name})")
            elif full == "numpy.load" and _keyword_is(node, "allow_pickle", True):
                found.append(f"{filename}:{node.lineno} numpy.load(allow_pickle=True) ({name})")
            elif full == "yaml.load" and not any(k.arg == "Loader" for k in node.keywords):
                found.append(f"{filename}:{node.lineno} yaml.load without a safe Loader ({name})")
    return found


def test_the_scanner_finds_what_it_looks_for():
    bad = ("import pickle\nfrom joblib import load\nimport torch as t\nimport torch\n"
           "torch.load('m.pt')\ntorch.load('m.pt', weights_only=False)\ntorch.save({}, 'm.pt')\n"
           "import numpy as np\nnp.load('x.npy', allow_pickle=True)\nimport yaml\nyaml.load(s)\n")
    assert len(unsafe_deserialization(bad, "bad.py")) == 7
    good = "import torch\ntorch.load('m.pt', weights_only=True)\nnp.load('x.npy')\nyaml.load(s, Loader=L)\n"
    assert unsafe_deserialization(good, "good.py") == []


@pytest.mark.parametrize("source", [
    "import torch as t\nt.load('m.pt')\n",
    "from torch import load\nload('m.pt')\n",
    "from torch import load as read_weights\nread_weights('m.pt', weights_only=False)\n",
    "from torch import save\nsave({}, 'm.pt')\n",
    "import torch.jit as tj\ntj.load('m.pt')\n",
    "from torch import jit\njit.load('m.pt')\n",
    "from torch.jit import load as jl\njl('m.pt')\n",
    "import numpy\nnumpy.load('x.npy', allow_pickle=True)\n",
    "from numpy import load as nl\nnl('x.npy', allow_pickle=True)\n",
    "import pandas as p\np.read_pickle('x')\n",
    "from yaml import load\nload(s)\n",
    "from yaml import unsafe_load as ul\nul(s)\n",
])
def test_the_scanner_sees_through_aliases(source):
    assert len(unsafe_deserialization(source, "alias.py")) == 1, source


def test_aliases_of_safe_calls_are_not_findings():
    good = ("import torch as t\nt.load('m.pt', weights_only=True)\nfrom torch import load\n"
            "load('m.pt', weights_only=True)\nfrom numpy import load as nl\nnl('x.npy')\n"
            "from yaml import load as yl\nyl(s, Loader=SafeLoader)\nfrom json import load\nload(f)\n")
    assert unsafe_deserialization(good, "good.py") == []


def test_no_python_in_the_repository_unpickles():
    files = repo_files("*.py")
    assert len(files) >= 40 and REPO / "model" / "serve.py" in files
    found = []
    for path in files:
        found += unsafe_deserialization(path.read_text(), str(path.relative_to(REPO)))
    assert found == []


def test_no_pickle_files_in_the_repository():
    found = []
    for path in repo_files():
        name = str(path.relative_to(REPO))
        if path.suffix.lower() in PICKLE_SUFFIXES:
            found.append(name)
            continue
        with open(path, "rb") as fh:
            start = fh.read(4)
        if start[:1] == b"\x80" and start[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
            found.append(f"{name} (pickle protocol {start[1]})")
        elif start == b"PK\x03\x04" and any(n.endswith(".pkl") for n in zipfile.ZipFile(path).namelist()):
            found.append(f"{name} (torch.save archive)")
    assert found == []


def _safetensors_header(path: Path) -> dict:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    assert 0 < size < len(data)
    return json.loads(data[8:8 + size])


def test_the_artifact_is_safetensors_and_json_and_loads_with_pickle_disabled(model_dir, monkeypatch):
    """model_dir is written by model.artifact.save, the one writer `train` uses."""
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "model.safetensors", "vocab.json"]
    header = _safetensors_header(model_dir / "model.safetensors")
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} <= {"F32", "F16", "BF16", "I64"}
    json.loads((model_dir / "config.json").read_text())
    json.loads((model_dir / "vocab.json").read_text())

    def refuse(*_args, **_kwargs):
        raise AssertionError("the model loader unpickled something")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(f"pickle.{name}", refuse)
    from model.artifact import load
    artifact = load(model_dir)
    assert artifact.encode("a wonderful film")


def test_a_pickle_planted_as_the_weights_is_refused_without_running(make_model_dir, tmp_path):
    from model.artifact import ArtifactError, load

    model_dir = make_model_dir()
    marker = tmp_path / "pwned"
    # protocol 0 by hand: os.mkdir(marker) when unpickled
    payload = b"cos\nmkdir\n(V" + str(marker).encode() + b"\ntR."
    (model_dir / "model.safetensors").write_bytes(payload)
    for name in ("model.pt", "model.pth", "model.pkl"):  # next to it: never read
        (model_dir / name).write_bytes(payload)
    with pytest.raises(ArtifactError, match="model.safetensors"):
        load(model_dir)
    assert not marker.exists()


# --------------------------------------------------------------------------- Content-Security-Policy

def parse_csp(policy: str) -> dict[str, list[str]]:
    directives = {}
    for part in policy.split(";"):
        tokens = part.split()
        if tokens:
            assert tokens[0].lower() not in directives, f"{tokens[0]} twice"
            directives[tokens[0].lower()] = tokens[1:]
    return directives


def effective(directives: dict[str, list[str]], name: str) -> list[str]:
    return directives.get(name, directives.get("default-src", []))


def cloud_csp(app) -> str:
    (policy,) = app.resources("site", "AWS::CloudFront::ResponseHeadersPolicy").values()
    config = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert config["ContentSecurityPolicy"]["Override"] is True
    return config["ContentSecurityPolicy"]["ContentSecurityPolicy"]


def local_csp() -> str:
    from fixtures_local import load_module
    return load_module("local_front_for_security", REPO / "scripts" / "local_front.py").CONTENT_SECURITY_POLICY


def assert_strict(policy: str) -> dict[str, list[str]]:
    d = parse_csp(policy)
    assert d.get("default-src") == ["'self'"], policy
    assert effective(d, "script-src") == ["'self'"], policy  # no inline, eval, nonce, hash or host
    assert effective(d, "style-src") == ["'self'"], policy
    for name, sources in d.items():
        for source in sources:
            lowered = source.lower()
            assert "*" not in lowered and "://" not in lowered and lowered not in ("http:", "https:"), (name, source)
            assert not lowered.startswith(("'unsafe-", "'nonce-", "'sha", "'strict-dynamic")), (name, source)
            assert lowered in ("'self'", "'none'") or (name == "img-src" and lowered == "data:"), (name, source)
    return d


def test_cloud_csp_forbids_inline_script_and_other_origins(app_default):
    d = assert_strict(cloud_csp(app_default))
    assert d["object-src"] == ["'none'"] and d["base-uri"] == ["'none'"] and d["frame-ancestors"] == ["'none'"]


def test_local_front_csp_is_strict_too(app_default):
    local, cloud = assert_strict(local_csp()), parse_csp(cloud_csp(app_default))
    # What the page uses, it may use locally only as in the cloud. (The local header is shorter:
    # object-src falls back to 'self' there, and base-uri, form-action, frame-ancestors are unset;
    # no inline script or other origin either way. docs/reliability.md, "Security".)
    for name in ("default-src", "script-src", "style-src", "connect-src", "img-src", "font-src"):
        assert set(effective(local, name)) <= set(effective(cloud, name)), name


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name, value in attrs.items():
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...> inline event handler")
            if name == "style":
                self.problems.append(f"<{tag} style=...> inline style")
            if name in ("src", "href", "action", "formaction") and value:
                if value.strip().lower().startswith(("javascript:", "data:", "http:", "https:", "//")):
                    self.problems.append(f"<{tag} {name}={value!r}> not a same-origin URL")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            self._in_script = True
            if not attrs.get("src"):
                self.problems.append("inline <script>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.problems.append("inline script text")


def test_the_page_needs_no_inline_script_style_or_other_origin():
    """What the strict CSP would block must not be what the page relies on."""
    parser = _Page()
    parser.feed((REPO / "web" / "index.html").read_text())
    assert parser.problems == []
    script = (REPO / "web" / "app.js").read_text()
    for risky in ("eval(", "new Function", ".innerHTML", ".outerHTML", "insertAdjacentHTML",
                  "document.write", "http://", "https://", "javascript:"):
        assert risky not in script, risky
    css = (REPO / "web" / "style.css").read_text()
    assert "@import" not in css and "http" not in css and "url(" not in css


# --------------------------------------------------------------------------- CORS, IAM, buckets

def _walk(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}/{key}", key, value
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_no_cors_wildcard_anywhere(app_default):
    found = []
    for key, template in app_default.templates.items():
        for path, name, value in _walk(template):
            text = json.dumps(value)
            if "access-control-allow-origin" in str(name).lower() and "*" in text:
                found.append(f"{key}{path}")
            if name in ("CorsConfiguration", "CorsConfig", "Cors", "CorsRules") and "*" in text:
                found.append(f"{key}{path}")
            if name == "Variables" and isinstance(value, dict) and "*" in json.dumps(value.get("ALLOWED_ORIGIN", "")):
                found.append(f"{key}{path}")
        methods = [r["Properties"]["HttpMethod"] for r in template["Resources"].values()
                   if r["Type"] == "AWS::ApiGateway::Method"]
        assert "OPTIONS" not in methods and "ANY" not in methods, (key, methods)
    assert found == []


def _statements(template):
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        docs = [props["PolicyDocument"]] if "PolicyDocument" in props else []
        docs += [p["PolicyDocument"] for p in props.get("Policies", [])]
        for doc in docs:
            for statement in doc["Statement"]:
                yield name, resource["Type"], statement


MANAGED_POLICIES_ALLOWED = {"AWSLambdaBasicExecutionRole", "AmazonAPIGatewayPushToCloudWatchLogs"}


def test_no_allow_statement_grants_a_whole_service_or_everyone(app_default):
    """Every Allow in every stack, CDK-generated roles included (tests/test_stacks_app.py holds our own
    roles to the stricter rule of no '*' in an action at all)."""
    checked = 0
    for key, template in app_default.templates.items():
        for name, _type, statement in _statements(template):
            checked += 1
            assert "NotAction" not in statement and "NotResource" not in statement, (key, name)
            if statement["Effect"] != "Allow":
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not [a for a in actions if a == "*" or a.endswith(":*")], (key, name, actions)
            principal = statement.get("Principal")
            assert principal not in ("*", {"AWS": "*"}), (key, name, principal)
        for name, resource in template["Resources"].items():
            for arn in resource.get("Properties", {}).get("ManagedPolicyArns", []):
                policy = json.dumps(arn).rsplit("/", 1)[-1].strip('"]} ')
                assert policy in MANAGED_POLICIES_ALLOWED, (key, name, policy)
    assert checked >= 20


def test_every_bucket_is_private_encrypted_and_ssl_only(app_default):
    buckets = 0
    for key, template in app_default.templates.items():
        resources = template["Resources"]
        ssl_only = set()
        for name, resource in resources.items():
            if resource["Type"] != "AWS::S3::BucketPolicy":
                continue
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                if (statement["Effect"] == "Deny"
                        and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}):
                    ssl_only.add(resource["Properties"]["Bucket"]["Ref"])
        for name, resource in resources.items():
            if resource["Type"] != "AWS::S3::Bucket":
                continue
            buckets += 1
            props = resource["Properties"]
            assert props["PublicAccessBlockConfiguration"] == {
                "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True}, (key, name)
            assert props["BucketEncryption"], (key, name)
            assert "WebsiteConfiguration" not in props and "AccessControl" not in props, (key, name)
            assert name in ssl_only, f"{key}/{name} accepts plain HTTP"
    assert buckets >= 4
