"""Cached virtual environments for the client tests, one per group of clients that can share one.

How venvs are built and cached: :mod:`rerankd_support.venvs`.

``python -m tests.clients.venvs [GROUP ...]`` builds the groups ahead of a test run (CI warm-up).

Why these groups (versions are the newest that resolve on PyPI, checked with ``pip index versions``):

- ``main``: cohere 7, litellm, voyageai, llama-index and Haystack (with its Cohere, Jina and TEI
  rankers) share one venv. litellm 1.103.8 and later, and haystack-ai 3.4.1, require
  ``certifi>=2026.10.19``, which is not on PyPI; so litellm 1.103.7 and haystack-ai 3.4.0. Haystack 3
  moved its TEI ranker to ``huggingface-api-haystack``.
- ``cohere5``: langchain-cohere 0.6.0 requires ``cohere<6``, so it cannot share ``main``.
- ``cohere5_legacy``: cohere 5.0-5.6 post ``<base_url>/rerank`` (base URLs end in ``/v1``), unlike 5.9+
  which post ``<base_url>/v1/rerank``; langchain-cohere needs cohere>=5.18, so the old line needs its own.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rerankd_support import venvs
from rerankd_support.venvs import BUILD_TIMEOUT, Group, VenvBuildError, pins

__all__ = ["BUILD_TIMEOUT", "GROUPS", "VenvBuildError", "ensure_venv"]

GROUPS: dict[str, Group] = {
    group.name: group
    for group in (
        Group(
            "main",
            requirements=pins(
                """
                cohere==7.3.1 litellm==1.103.7 voyageai==0.5.0 llama-index-core==0.14.25
                llama-index-postprocessor-jinaai-rerank==0.6.0 llama-index-postprocessor-tei-rerank==0.6.0
                haystack-ai==3.4.0 cohere-haystack==11.0.0 jina-haystack==2.0.1
                huggingface-api-haystack==3.1.0
                """
            ),
            lock=pins(
                """
                aiohappyeyeballs==2.7.1 aiohttp==3.14.5 aiolimiter==1.3.0 aiosignal==1.4.0 aiosqlite==0.22.1
                annotated-types==0.8.0 anyio==4.16.0 attrs==26.1.0 backoff==2.2.1 banks==2.5.1 boto3==1.44.5
                botocore==1.44.5 certifi==2026.10.18 charset-normalizer==3.5.2 click==8.5.1
                cloudpickle==3.1.2 cohere==7.3.1 cohere-haystack==11.0.0 colorama==0.4.6
                dataclasses-json==0.6.7 defusedxml==0.7.1 deprecated==1.3.1 dirtyjson==1.0.8 distro==1.9.0
                docstring-parser==0.18.0 fastavro==1.13.1 fastuuid==0.14.0 filelock==4.2.11 filetype==1.2.0
                frozenlist==1.8.0 fsspec==2026.9.0 greenlet==3.5.6 griffe==2.4.1 griffecli==2.4.1
                griffelib==2.4.1 h11==0.16.0 h2==4.4.1 haystack-ai==3.4.0 hf-xet==1.8.0 hpack==4.2.0
                httpcore==1.0.9 httpcore2==2.16.2 httpx==0.28.1 httpx2==2.16.2
                huggingface-api-haystack==3.1.0 huggingface-hub==2.4.0 hyperframe==6.1.0 idna==3.20
                importlib-metadata==8.9.0 jina-haystack==2.0.1 jinja2==3.1.6 jiter==0.19.0 jmespath==1.1.0
                joblib==1.6.0 jsonpatch==1.47 jsonpointer==3.12 jsonschema==4.26.0
                jsonschema-specifications==2025.9.1 langchain-core==1.7.2 langchain-protocol==0.0.20
                langchain-text-splitters==1.1.3 langsmith==0.14.17 lazy-imports==1.2.0 litellm==1.103.7
                llama-index-core==0.14.25 llama-index-instrumentation==0.6.0
                llama-index-postprocessor-jinaai-rerank==0.6.0 llama-index-postprocessor-tei-rerank==0.6.0
                llama-index-workflows==2.26.1 markupsafe==3.0.4 marshmallow==3.26.2 more-itertools==11.2.1
                multidict==7.2.1 mypy-extensions==1.2.0 nest-asyncio==1.6.0 networkx==3.6.1 nltk==3.10.4
                numpy==2.4.6 openai==2.54.0 orjson==3.13.0 packaging==26.3 pillow==13.0.0
                platformdirs==4.14.5 posthog==7.91.1 propcache==0.5.4 pydantic==2.14.3 pydantic-core==2.50.4
                pydantic-settings==2.16.3 python-dateutil==2.9.0.post0 python-dotenv==1.2.4 pyyaml==6.0.3
                referencing==0.37.0 regex==2026.11.15 requests==2.34.2 requests-toolbelt==1.0.0
                rpds-py==2026.9.1 s3transfer==0.19.3 setuptools==84.2.1 six==1.17.0 sniffio==1.3.1
                sqlalchemy==2.1.9 tenacity==9.2.1 tiktoken==0.14.0 tinytag==2.3.2 tokenizers==0.23.3
                tqdm==4.70.1 truststore==0.10.5 types-requests==2.33.0.20261030 typing-extensions==4.16.0
                typing-inspect==0.9.0 typing-inspection==0.4.5 urllib3==2.8.0 uuid-utils==0.19.0
                voyageai==0.5.0 websockets==17.4 wrapt==2.5.2 xxhash==4.1.0 yarl==1.25.1 zipp==4.1.2
                zstandard==0.25.0
                """
            ),
        ),
        Group(
            "cohere5",
            requirements=pins("cohere==5.21.1 langchain-cohere==0.6.0 langchain-core==1.7.2"),
            lock=pins(
                """
                annotated-types==0.8.0 anyio==4.16.0 certifi==2026.10.18 charset-normalizer==3.5.2
                click==8.5.1 cohere==5.21.1 distro==1.9.0 fastavro==1.13.1 filelock==4.2.11 fsspec==2026.9.0
                h11==0.16.0 hf-xet==1.8.0 httpcore==1.0.9 httpcore2==2.16.2 httpx==0.28.1 httpx2==2.16.2
                huggingface-hub==2.4.0 idna==3.20 jsonpatch==1.47 jsonpointer==3.12 langchain-cohere==0.6.0
                langchain-core==1.7.2 langchain-protocol==0.0.20 langsmith==0.14.17 orjson==3.13.0
                packaging==26.3 pydantic==2.14.3 pydantic-core==2.50.4 pyyaml==6.0.3 requests==2.34.2
                requests-toolbelt==1.0.0 sniffio==1.3.1 tenacity==9.2.1 tokenizers==0.23.3 tqdm==4.70.1
                truststore==0.10.5 types-pyyaml==6.0.12.20261113 types-requests==2.33.0.20261030
                typing-extensions==4.16.0 typing-inspection==0.4.5 urllib3==2.8.0 uuid-utils==0.19.0
                websockets==17.4 xxhash==4.1.0 zstandard==0.25.0
                """
            ),
        ),
        Group(
            "cohere5_legacy",
            requirements=pins("cohere==5.6.2"),
            lock=pins(
                """
                annotated-types==0.8.0 anyio==4.16.0 boto3==1.44.5 botocore==1.44.5 certifi==2026.10.18
                charset-normalizer==3.5.2 click==8.5.1 cohere==5.6.2 fastavro==1.13.1 filelock==4.2.11
                fsspec==2026.9.0 h11==0.16.0 hf-xet==1.8.0 httpcore==1.0.9 httpcore2==2.16.2 httpx==0.28.1
                httpx-sse==0.4.3 httpx2==2.16.2 huggingface-hub==2.4.0 idna==3.20 jmespath==1.1.0
                packaging==26.3 parameterized==0.9.0 pydantic==2.14.3 pydantic-core==2.50.4
                python-dateutil==2.9.0.post0 pyyaml==6.0.3 requests==2.34.2 s3transfer==0.19.3 six==1.17.0
                tokenizers==0.23.3 tqdm==4.70.1 truststore==0.10.5 types-requests==2.33.0.20261030
                typing-extensions==4.16.0 typing-inspection==0.4.5 urllib3==2.8.0
                """
            ),
        ),
    )
}


def ensure_venv(name: str) -> Path:
    """The python of client group ``name``'s venv, built first when it is not cached yet."""
    return venvs.ensure_venv(GROUPS[name])


def main(argv: list[str]) -> int:
    names = argv or list(GROUPS)
    status = 0
    for name in names:
        began = time.monotonic()
        try:
            python = ensure_venv(name)
        except VenvBuildError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        print(f"{name}: {python} ({time.monotonic() - began:.1f}s)")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
