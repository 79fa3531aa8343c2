"""Reference clients the benchmark runs as separate processes (process start counts for every tool).

    python benchmarks/clients.py bare-async   HOST:PORT REPO [--concurrency 16]
    python benchmarks/clients.py bare-threads HOST:PORT REPO [--concurrency 16]
    python benchmarks/clients.py oras         HOST:PORT REPO

Each lists the tags, GETs every tag's manifest with the full Accept header, and prints one JSON
line: {"tags": N, "manifests": M, "bytes": B}. They do nothing else (no parsing, no cache, no
retries), which makes the two bare loops the floor a real tool can approach, not beat. Imports are
kept to what each loop needs.
"""

from __future__ import annotations

import json
import sys

ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


def _next(url: str, link: str | None) -> str | None:
    if not link:
        return None
    import httpx

    return str(httpx.URL(url).join(link.split(";")[0].strip().strip("<>")))


def bare_async(host: str, repo: str, concurrency: int) -> dict:
    import asyncio

    import httpx

    async def run() -> dict:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            tags: list[str] = []
            url: str | None = f"http://{host}/v2/{repo}/tags/list"
            while url:
                response = await client.get(url)
                response.raise_for_status()
                tags += response.json().get("tags") or []
                url = _next(url, response.headers.get("link"))
            sem = asyncio.Semaphore(concurrency)

            async def one(tag: str) -> int:
                async with sem:
                    response = await client.get(f"http://{host}/v2/{repo}/manifests/{tag}",
                                                headers={"Accept": ACCEPT})
                    response.raise_for_status()
                    return len(response.content)

            sizes = await asyncio.gather(*(one(t) for t in tags))
            return {"tags": len(tags), "manifests": len(sizes), "bytes": sum(sizes)}

    return asyncio.run(run())


def bare_threads(host: str, repo: str, concurrency: int) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(limits=limits, timeout=60) as client:
        tags: list[str] = []
        url: str | None = f"http://{host}/v2/{repo}/tags/list"
        while url:
            response = client.get(url)
            response.raise_for_status()
            tags += response.json().get("tags") or []
            url = _next(url, response.headers.get("link"))

        def one(tag: str) -> int:
            response = client.get(f"http://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
            response.raise_for_status()
            return len(response.content)

        with ThreadPoolExecutor(concurrency) as pool:
            sizes = list(pool.map(one, tags))
    return {"tags": len(tags), "manifests": len(sizes), "bytes": sum(sizes)}


def oras_serial(host: str, repo: str) -> dict:
    """oras-py as its users use it: one Registry client, get_tags, then get_manifest per tag, in turn."""
    import oras.provider

    registry = oras.provider.Registry(hostname=host, insecure=True)
    tags = registry.get_tags(f"{host}/{repo}")
    total = 0
    for tag in tags:
        # get_manifest's default Accept already lists the 4 manifest and index types.
        manifest = registry.get_manifest(f"{host}/{repo}:{tag}")
        total += len(json.dumps(manifest))
    return {"tags": len(tags), "manifests": len(tags), "bytes": total}


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    mode, host, repo = argv[:3]
    concurrency = 16
    if "--concurrency" in argv:
        concurrency = int(argv[argv.index("--concurrency") + 1])
    if mode == "bare-async":
        result = bare_async(host, repo, concurrency)
    elif mode == "bare-threads":
        result = bare_threads(host, repo, concurrency)
    elif mode == "oras":
        result = oras_serial(host, repo)
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
