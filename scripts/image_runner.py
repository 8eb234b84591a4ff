"""Run the built image the way SageMaker runs a bring-your-own container, with Docker or Podman.

Used by tests/test_image.py and benchmarks/bench_image.py. SageMaker gives a training container its
inputs as files under /opt/ml (no ``SM_*`` variables: those come from AWS's training toolkit, which
this image does not have), ``TRAINING_JOB_NAME``/``TRAINING_JOB_ARN``, and no network; it gives an
endpoint container the model under /opt/ml/model, ``SAGEMAKER_BIND_TO_PORT`` and, on a serverless
endpoint, possibly no right to write anywhere but /tmp.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# SageMaker raises these limits for its containers; this machine's container runtime refuses its
# own defaults inside a sandbox, so say them.
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000"]


class EngineMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Engine:
    name: str  # docker | podman

    @classmethod
    def find(cls) -> "Engine":
        if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True,
                                                     timeout=30).returncode == 0:
            return cls("docker")
        if shutil.which("podman"):
            return cls("podman")
        raise EngineMissing("no container engine: the image tests need Docker (daemon running) or Podman; "
                            "scripts/install_system_deps.sh installs podman, buildah, runc and mmdebstrap")

    def inspect(self, ref: str) -> dict:
        out = subprocess.run([self.name, "image", "inspect", ref], check=True, capture_output=True, text=True)
        return json.loads(out.stdout)[0]

    def run_command(self, ref: str, *args: str, name: str | None = None, network: str = "none",
                    user: str | None = None, read_only: bool = False, env: dict[str, str] | None = None,
                    volumes: list[str] = (), entrypoint: str | None = None) -> list[str]:
        cmd = [self.name, "run", "--rm", *ULIMITS, "--network", network]
        if name:
            cmd += ["--name", name]
        if user:
            cmd += ["--user", user]
        if read_only:  # what a serverless endpoint may give: no writable root, a writable /tmp
            cmd += ["--read-only", "--tmpfs", "/tmp"]
        for key, value in (env or {}).items():
            cmd += ["-e", f"{key}={value}"]
        for volume in volumes:
            cmd += ["-v", volume]
        if entrypoint is not None:
            cmd += ["--entrypoint", entrypoint]
        return [*cmd, ref, *args]

    def signal(self, name: str, sig: str = "TERM") -> None:
        subprocess.run([self.name, "kill", "--signal", sig, name], capture_output=True, timeout=30)

    def remove(self, name: str) -> None:
        subprocess.run([self.name, "rm", "-f", name], capture_output=True, timeout=60)

    def image_size(self, ref: str) -> int:
        return int(self.inspect(ref)["Size"])


def training_job_dir(base: Path, hyperparameters: dict[str, str], archive: Path | None,
                     channel: str = "train") -> Path:
    """/opt/ml as SageMaker lays it out for a training job with one File-mode channel."""
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps(
        {channel: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                   "RecordWrapperType": "None"}}))
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "current_instance_type": "ml.m5.xlarge", "current_group_name": "homogeneousCluster",
         "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    data = base / "input" / "data" / channel
    data.mkdir(parents=True)
    if archive is not None:
        shutil.copyfile(archive, data / archive.name)
    (base / "model").mkdir()
    (base / "output").mkdir()
    return base


def train_command(engine: Engine, ref: str, base: Path, job_name: str = "image-test") -> list[str]:
    return engine.run_command(ref, "train", network="none", volumes=[f"{base}:/opt/ml"],
                              env={"TRAINING_JOB_NAME": job_name,
                                   "TRAINING_JOB_ARN": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{job_name}"})


def serve_command(engine: Engine, ref: str, model_dir: Path, port: int, name: str, *, user: str | None = None,
                  command: tuple[str, ...] = ("serve",)) -> list[str]:
    return engine.run_command(ref, *command, name=name, network="host", user=user, read_only=True,
                              env={"SAGEMAKER_BIND_TO_PORT": str(port)},
                              volumes=[f"{model_dir}:/opt/ml/model:ro"])
