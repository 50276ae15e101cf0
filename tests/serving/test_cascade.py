"""Cascades: the scorer over its stages (order, scores below the final stage, usage, admission, spans,
a failing stage named), exact against the stages run by hand (bm25 and generated models), the config
checks of `kind: cascade`, and the ledger of a real server charging every stage."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from rerankd_support.harness import Server

from rerankd.backends.specs import CascadeSpec
from rerankd.config import ConfigError, Settings, load_settings
from rerankd.errors import Overloaded, PaymentRequired
from rerankd.gateway.store import Store, ledger
from rerankd.gateway.store import keys as key_store
from rerankd.serving.cascade import CascadeScorer
from rerankd.serving.runtime import Runtime
from rerankd.spec import Price
from rerankd.types import (
    Activation,
    Admit,
    CallSize,
    RerankRequest,
    ScoreOptions,
    Scorer,
    ScoreResult,
    ScorerInfo,
    Span,
    Timings,
)

QUERY = "boundary layer heat transfer"
DOCUMENTS = (
    "heat transfer in a laminar boundary layer",
    "shock waves at supersonic speed",
    "boundary layer separation on a wing",
    "flutter of thin panels",
    "heat transfer to a blunt body",
    "the boundary layer of a flat plate with heat transfer",
    "nozzle flow",
)


class FakeScorer:
    """Scores each document by a table of its text; counts one token per word."""

    def __init__(self, table: dict[str, float], activation: Activation = "identity") -> None:
        self.table = table
        self.activation = activation
        self.seen: list[tuple[str, ...]] = []
        self.options: list[ScoreOptions] = []
        self.admitted: list[CallSize] = []
        self.failure: Exception | None = None

    async def score(
        self, query: str, documents: tuple[str, ...], options: ScoreOptions, admit: Admit | None = None
    ) -> ScoreResult:
        self.seen.append(documents)
        self.options.append(options)
        size = CallSize(len(query.split()) + sum(len(d.split()) for d in documents), len(documents))
        if admit is not None:
            self.admitted.append(size)
            await admit(size)
        if self.failure is not None:
            raise self.failure
        return ScoreResult(
            scores=tuple(self.table[d] for d in documents),
            activation=self.activation,
            query_tokens=len(query.split()),
            document_tokens=tuple(len(d.split()) for d in documents),
            timings=Timings(inference=0.25),
            spans=tuple(Span(0, 4, self.table[d]) for d in documents) if options.return_spans else (),
        )

    def info(self) -> ScorerInfo:
        return ScorerInfo()

    async def close(self) -> None:
        pass


def cascade_of(scorers: dict[str, Scorer], *stages: dict[str, Any]) -> CascadeScorer:
    async def resolve(name: str) -> Scorer:
        return scorers[name]

    spec = CascadeSpec.model_validate({"name": "c", "kind": "cascade", "stages": list(stages)})
    return CascadeScorer.load(spec, resolve)


def three_stages() -> tuple[dict[str, FakeScorer], CascadeScorer]:
    # first: d0 > d1 > ... > d6; second keeps 4 (d0..d3) and prefers d3 > d2 > d1 > d0; last keeps 2.
    first = FakeScorer({d: 10.0 - i for i, d in enumerate(DOCUMENTS)}, activation="saturation")
    second = FakeScorer({d: float(i) for i, d in enumerate(DOCUMENTS)})
    last = FakeScorer({DOCUMENTS[3]: -1.0, DOCUMENTS[2]: 1.0}, activation="sigmoid")
    scorers = {"first": first, "second": second, "last": last}
    cascade = cascade_of(
        dict(scorers),
        {"model": "first"},
        {"model": "second", "top_k": 4},
        {"model": "last", "top_k": 2},
    )
    return scorers, cascade


def order_of(scores: tuple[float, ...]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: -scores[i])


async def test_the_final_stage_ranks_first_and_each_earlier_stage_below_in_its_own_order() -> None:
    scorers, cascade = three_stages()
    admitted: list[CallSize] = []

    async def admit(size: CallSize) -> None:
        admitted.append(size)

    options = ScoreOptions(return_spans=True, long_documents="truncate_end")
    result = await cascade.score(QUERY, DOCUMENTS, options, admit)
    assert all(fake.options == [options] for fake in scorers.values())  # windows as the request asks
    # each stage sees the survivors of the one before, in request order
    assert scorers["first"].seen == [DOCUMENTS]
    assert scorers["second"].seen == [DOCUMENTS[:4]]
    assert scorers["last"].seen == [(DOCUMENTS[2], DOCUMENTS[3])]
    # last stage: d2 > d3; dropped by the second: d1 > d0; dropped by the first: d4 > d5 > d6
    assert order_of(result.scores) == [2, 3, 1, 0, 4, 5, 6]
    sigmoid = [1 / (1 + 2.718281828459045**1), 1 / (1 + 2.718281828459045**-1)]
    assert result.scores[2] == pytest.approx(sigmoid[1]) and result.scores[3] == pytest.approx(sigmoid[0])
    lowest = result.scores[3]
    assert [result.scores[i] for i in (1, 0, 4, 5, 6)] == [lowest - k for k in range(1, 6)]
    assert result.activation == "identity"
    # usage: every stage's tokens; a document counts once per stage that scored it
    words = [len(d.split()) for d in DOCUMENTS]
    assert result.query_tokens == 3 * 4
    assert result.document_tokens == (
        2 * words[0],
        2 * words[1],
        3 * words[2],
        3 * words[3],
        words[4],
        words[5],
        words[6],
    )
    assert result.document_chunks == (2, 2, 3, 3, 1, 1, 1)
    assert result.timings.inference == 0.75  # one stage after the other
    # admission: before each stage's work, the call's exact size so far; the last one is the whole call
    stage_sizes = [fake.admitted[0] for fake in scorers.values()]
    running = [sum(s.tokens for s in stage_sizes[: k + 1]) for k in range(3)]
    assert [size.tokens for size in admitted] == running
    assert [size.inputs for size in admitted] == [7, 11, 13]
    assert admitted[-1] == CallSize(result.query_tokens + sum(result.document_tokens), 13)
    # spans from the last stage that scored each document, on its relevance scale
    assert result.spans[2] == Span(0, 4, pytest.approx(sigmoid[1]))  # type: ignore[arg-type]
    assert result.spans[1] == Span(0, 4, 1.0)  # the second stage's (identity)
    assert result.spans[6] == Span(0, 4, pytest.approx(4 / 5))  # type: ignore[arg-type]  # saturation


async def test_a_failing_stage_is_named_and_the_keys_limits_pass_as_they_are() -> None:
    scorers, cascade = three_stages()
    scorers["second"].failure = Overloaded("model 'second' has too much queued work", retry_after=7)
    with pytest.raises(Overloaded) as caught:
        await cascade.score(QUERY, DOCUMENTS, ScoreOptions())
    assert caught.value.message == ("cascade 'c', stage 2 of 3: model 'second' has too much queued work")
    assert caught.value.retry_after == 7 and caught.value.headers == {"Retry-After": "7"}
    assert scorers["last"].seen == []  # nothing after the failed stage ran

    scorers, cascade = three_stages()

    async def budget(size: CallSize) -> None:
        if size.tokens > 40:
            raise PaymentRequired("key sk-x has spent its budget")

    with pytest.raises(PaymentRequired) as refused:
        await cascade.score(QUERY, DOCUMENTS, ScoreOptions(), budget)
    assert refused.value.message == "key sk-x has spent its budget"  # as the gateway said it
    assert scorers["last"].seen == []


def settings_with(*models: dict[str, Any]) -> Settings:
    return load_settings(None, models=list(models), database_url="none")


BM25 = {"name": "bm25", "kind": "bm25"}


def test_config_refuses_unknown_self_nested_and_badly_cut_stages() -> None:
    def cascade(*stages: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"name": "c", "kind": "cascade", "stages": list(stages), **extra}

    with pytest.raises(ConfigError, match="combines 'other', which is not another configured model"):
        settings_with(BM25, cascade({"model": "bm25"}, {"model": "other", "top_k": 3}))
    with pytest.raises(ConfigError, match="combines 'c'"):
        settings_with(BM25, cascade({"model": "bm25"}, {"model": "c", "top_k": 3}))
    hybrid = {"name": "h", "kind": "hybrid", "components": [{"model": "bm25"}, {"model": "b2"}]}
    with pytest.raises(ConfigError, match="combines models itself"):
        settings_with(
            BM25,
            {"name": "b2", "kind": "bm25"},
            hybrid,
            cascade({"model": "bm25"}, {"model": "h", "top_k": 2}),
        )
    with pytest.raises(ConfigError, match=r"stage 2 \(bm25\) needs a `top_k`"):
        settings_with(BM25, cascade({"model": "bm25"}, {"model": "bm25"}))
    with pytest.raises(ConfigError, match=r"the first stage \(bm25\) scores every document"):
        settings_with(BM25, cascade({"model": "bm25", "top_k": 5}, {"model": "bm25", "top_k": 3}))
    with pytest.raises(ConfigError, match="top_k"):
        settings_with(BM25, cascade({"model": "bm25"}, {"model": "bm25", "top_k": 0}))
    with pytest.raises(ConfigError, match=r"stage 3 \(bm25\) has top_k 20, more than the 10"):
        settings_with(
            BM25, cascade({"model": "bm25"}, {"model": "bm25", "top_k": 10}, {"model": "bm25", "top_k": 20})
        )
    with pytest.raises(ConfigError, match="stages"):
        settings_with(BM25, cascade({"model": "bm25"}))
    with pytest.raises(ConfigError, match=r"combines priced models \(bm25\) but has no `price`"):
        settings_with(
            {**BM25, "price": {"per_request": 1}}, cascade({"model": "bm25"}, {"model": "bm25", "top_k": 2})
        )
    accepted = settings_with(BM25, cascade({"model": "bm25"}, {"model": "bm25", "top_k": 2}))
    assert accepted.models[-1].summary().source == "cascade: bm25 -> bm25 (top 2)"


@pytest.fixture(scope="module")
def runtime(tiny_bi_encoder: Path, tiny_bert: Path) -> Iterator[Runtime]:
    settings = settings_with(
        BM25,
        {"name": "bi", "kind": "bi-encoder", "source": str(tiny_bi_encoder), "max_length": 16},
        {"name": "cross", "kind": "cross-encoder", "source": str(tiny_bert), "max_length": 16},
        {
            "name": "cascade",
            "kind": "cascade",
            "stages": [{"model": "bm25"}, {"model": "bi", "top_k": 5}, {"model": "cross", "top_k": 3}],
        },
    )
    yield Runtime.build(settings, metered=False)


async def test_exact_against_each_stage_run_by_hand(runtime: Runtime) -> None:
    service = runtime.service

    async def run(model: str, documents: tuple[str, ...], **fields: Any) -> Any:
        return await service.rerank(RerankRequest(model=model, query=QUERY, documents=documents, **fields))

    try:
        answer = await run("cascade", DOCUMENTS, top_n=4, return_documents=False)
        by_hand = []
        survivors: tuple[str, ...] = DOCUMENTS
        usage = 0
        for model, keep in (("bm25", 5), ("bi", 3), ("cross", None)):
            response = await run(model, survivors)
            usage += response.usage.total_tokens
            by_hand.append([survivors[r.index] for r in response.results])
            if keep is not None:  # the next stage scores these, in request order
                kept = {survivors[r.index] for r in response.results[:keep]}
                survivors = tuple(d for d in survivors if d in kept)
        final = response  # the last stage alone, on the survivors
        whole = await run("cascade", DOCUMENTS)
    finally:
        await runtime.pool.close()
    ranked = [DOCUMENTS[r.index] for r in whole.results]
    # the final stage's order and scores on top, then the second's dropped, then the first's
    assert ranked == by_hand[2] + by_hand[1][3:] + by_hand[0][5:]
    assert [r.relevance_score for r in whole.results[:3]] == [r.relevance_score for r in final.results]
    scores = [r.relevance_score for r in whole.results]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    assert whole.usage.total_tokens == usage  # every stage counted
    assert whole.scored_documents == 7 + 5 + 3
    # top_n and return_documents as for any model
    assert [r.index for r in answer.results] == [r.index for r in whole.results[:4]]
    assert all(r.document is None for r in answer.results)


StartServer = Callable[..., Server]


@pytest.mark.slow
def test_the_ledger_charges_every_stage_and_admission_stops_before_a_stage(
    start_server: StartServer, tiny_bi_encoder: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    price = {"per_million_tokens": 1000}
    config = {
        "models": [
            {"name": "bm25", "kind": "bm25", "price": price},
            {
                "name": "bi",
                "kind": "bi-encoder",
                "source": str(tiny_bi_encoder),
                "max_length": 16,
                "price": price,
            },
            {
                "name": "cascade",
                "kind": "cascade",
                "stages": [{"model": "bm25"}, {"model": "bi", "top_k": 3}],
                "price": price,
            },
        ]
    }
    server = start_server(config, env={"RERANKD_DATABASE_URL": url})
    store = Store(url)
    store.upgrade()
    record, plaintext = key_store.create_key(store.engine, "cascade")
    headers = {"Authorization": f"Bearer {plaintext}"}

    def call(model: str, documents: tuple[str, ...], key: dict[str, str] = headers) -> httpx.Response:
        body = {"model": model, "query": QUERY, "documents": list(documents)}
        return httpx.post(f"{server.url}/v1/rerank", json=body, headers=key, timeout=60)

    first = call("bm25", DOCUMENTS).json()
    kept = {first["results"][k]["index"] for k in range(3)}
    second = call("bi", tuple(d for i, d in enumerate(DOCUMENTS) if i in kept)).json()
    cascade = call("cascade", DOCUMENTS)
    assert cascade.status_code == 200
    stages = first["usage"]["total_tokens"] + second["usage"]["total_tokens"]
    assert cascade.json()["usage"]["total_tokens"] == stages
    rows = ledger.calls(store.engine, ledger.UsageFilter(key_id=record.id))
    (row,) = [row for row in rows if row.request_id == cascade.headers["x-request-id"]]
    assert (row.model, row.status, row.total_tokens) == ("cascade", 200, stages)
    assert row.cost_nanos == Price(per_million_tokens=Decimal(1000)).cost_of(CallSize(stages, 7 + 3))

    # A budget that pays for bm25's part but not the whole call: refused (402) at the second stage's
    # admission, nothing charged, nothing left held.
    bm25_cost = Price(per_million_tokens=Decimal(1000)).cost_of(CallSize(first["usage"]["total_tokens"], 7))
    poor, poor_key = key_store.create_key(store.engine, "poor", budget_nanos=bm25_cost + 1)
    refused = call("cascade", DOCUMENTS, {"Authorization": f"Bearer {poor_key}"})
    assert refused.status_code == 402
    after = key_store.get_key(store.engine, poor.id)
    assert after is not None and (after.spent_nanos, after.reserved_nanos) == (0, 0)
    store.close()
