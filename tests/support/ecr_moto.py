"""moto's ECR server (a real emulator of the ECR API; no /v2) on 127.0.0.1, started by the tests,
and the environment that points the janitor at it (or at the stand-in) without any real AWS
credential, profile file or instance-metadata lookup."""

from __future__ import annotations

import hashlib
import json
import socket

ACCOUNT = "123456789012"          # moto's default account
REGION = "us-east-1"
HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def aws_env(monkeypatch, endpoint: str, tmp_path) -> None:
    """Point boto3 at `endpoint` with dummy static keys; nothing ambient is read (no ~/.aws, no
    instance metadata: link-local addresses are never contacted by a test)."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAJANITORTESTKEY00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "janitor-test-secret-never-printed")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


class MotoEcr:
    """moto's server in this process; `client` pushes images as a build would (PutImage)."""

    def __init__(self):
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)      # one INFO line per request otherwise

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.port}"
        import boto3

        self.client = boto3.client("ecr", region_name=REGION, endpoint_url=self.url,
                                   aws_access_key_id="AKIAJANITORTESTKEY00", aws_secret_access_key="x")

    def stop(self) -> None:
        self.server.stop()

    def repository(self, name: str) -> "MotoRepo":
        self.client.create_repository(repositoryName=name)
        return MotoRepo(self.client, name)


def dumps(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"))


def sha(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return "sha256:" + hashlib.sha256(data).hexdigest()


class MotoRepo:
    def __init__(self, client, name: str):
        self.client = client
        self.name = name

    def put(self, doc: dict, tag: str | None = None) -> str:
        """PutImage with the manifest's own digest (moto invents index digests otherwise)."""
        text = dumps(doc)
        digest = sha(text)
        self.client.put_image(repositoryName=self.name, imageManifest=text, imageManifestMediaType=doc["mediaType"],
                              imageDigest=digest, **({"imageTag": tag} if tag else {}))
        return digest

    def tag(self, doc: dict, tag: str) -> str:
        return self.put(doc, tag)

    def images(self) -> dict[str, list[str]]:
        details = self.client.describe_images(repositoryName=self.name)["imageDetails"]
        return {d["imageDigest"]: sorted(d.get("imageTags") or []) for d in details}


def image_manifest(seed: str, layers: int = 2, layer_size: int = 1000, shared: list[dict] | None = None,
                   config_type: str = "application/vnd.oci.image.config.v1+json",
                   annotations: dict | None = None) -> dict:
    """An OCI image manifest with made-up blob digests (ECR's API never reads the blobs)."""
    own = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(f"{seed}-layer{i}"),
            "size": layer_size + i} for i in range(layers)]
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": config_type, "digest": sha(f"{seed}-config"), "size": 100},
           "layers": (shared or []) + own}
    if annotations:
        doc["annotations"] = annotations
    return doc


def cache_manifest(seed: str, layers: int = 2, shared: list[dict] | None = None) -> dict:
    """A BuildKit cache in image-manifest form (what ECR accepts: `image-manifest=true`)."""
    return image_manifest(seed, layers, shared=shared, config_type="application/vnd.buildkit.cacheconfig.v0")


def index(children: list[tuple[dict, str]]) -> dict:
    """An OCI index of (manifest, platform architecture) children."""
    return {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": c["mediaType"], "digest": sha(dumps(c)), "size": len(dumps(c)),
                           "platform": {"os": "linux", "architecture": arch}} for c, arch in children]}
