#!/usr/bin/env python3
"""The app's OpenAI-compatible API (/v1) through the official `openai` Python
SDK (openai==3.57.0, which scripts/llama-python.sh installs into the test
venv): what a stock client sees, on the wire the SDK expects.

A Rust integration test spawns the real app, makes an account, an API key
and an indexed document, then runs this script with:

    RAGCHAT_BASE_URL           e.g. http://127.0.0.1:41234/v1
    RAGCHAT_API_KEY            an rck_... key of the user owning the document
    RAGCHAT_GROUNDED_QUESTION  a question the document answers
    RAGCHAT_DOCUMENT_NAME      the document's file name (garden-guide.md)
    RAGCHAT_EMBEDDING_MODEL    the embedding model's id
    RAGCHAT_OWN_EMBEDDINGS     JSON {"texts": [...], "vectors": [[...], ...]}:
                               the app's own embeddings of those texts
    RAGCHAT_PLAIN_MODEL        a chat model without retrieval

    $RAGCHAT_OPENAI_PYTHON tests/openai_sdk.py

It prints `ok   <check>` or `FAIL <check>: why` per check, runs every check
it can, and exits 1 if any failed (2 if the environment is incomplete). The
rate-limit check runs last: it spends the key's request budget on purpose.
Only the standard library and the SDK (with its own dependencies) are used.
"""

import json
import math
import os
import re
import sys
import time
import uuid

import httpx2  # the SDK's HTTP client (openai 3.x depends on it)
import openai
from openai import OpenAI

TIMEOUT = 120  # the embedded chat model is slow on two cores
UNKNOWN_KEY = "rck_" + "0" * 64
FOLLOW_UP = "And what else should I know about that?"
SOURCE_FIELDS = ("index", "document_id", "document", "collection", "page", "heading", "text", "score", "cited")


class CheckFailed(Exception):
    pass


def expect(condition, why):
    if not condition:
        raise CheckFailed(why)


class Checks:
    """Runs checks, prints one line each, remembers failures."""

    def __init__(self):
        self.failed = []

    def run(self, name, check, *args):
        """Runs `check(*args)`: returns its result (a `Detail`'s value, its
        text printed beside the `ok`), or None if it failed."""
        try:
            result = check(*args)
        except CheckFailed as e:
            return self._fail(name, str(e))
        except openai.APIStatusError as e:
            return self._fail(name, f"{type(e).__name__} (HTTP {e.status_code}): {e.body!r}")
        except Exception as e:  # any other surprise is this check's failure
            return self._fail(name, f"{type(e).__name__}: {e}")
        if isinstance(result, Detail):
            print(f"ok   {name} ({result.text})", flush=True)
            return result.value
        print(f"ok   {name}", flush=True)
        return result

    def _fail(self, name, why):
        self.failed.append(name)
        print(f"FAIL {name}: {why}", flush=True)
        return None


class Detail:
    """A check's result plus a note to print beside its `ok`."""

    def __init__(self, value, text):
        self.value = value
        self.text = text


# ---------------------------------------------------------------- helpers


def extra(obj, name):
    """An extension field (unknown to the SDK's types): pydantic keeps it as
    an extra, reachable by attribute or through `model_extra`."""
    value = getattr(obj, name, None)
    if value is None:
        value = (getattr(obj, "model_extra", None) or {}).get(name)
    return value


def as_dict(item):
    if isinstance(item, dict):
        return item
    if hasattr(item, "model_dump"):
        return item.model_dump()
    return dict(vars(item))


def sources_of(obj):
    """The `sources` extension of a completion or chunk, as a list of dicts
    ([] when absent)."""
    sources = extra(obj, "sources")
    if sources is None:
        return []
    expect(isinstance(sources, list), f"`sources` is not a list: {sources!r}")
    return [as_dict(s) for s in sources]


def check_source_shapes(sources):
    for s in sources:
        missing = [f for f in SOURCE_FIELDS if f not in s]
        expect(not missing, f"source lacks {missing}: {s!r}")
        expect(isinstance(s["index"], int) and s["index"] >= 1, f"bad source index: {s['index']!r}")
        expect(isinstance(s["document"], str) and s["document"], f"bad source document: {s['document']!r}")
        expect(isinstance(s["text"], str) and s["text"].strip(), f"source {s['index']} has no passage text")
        expect(s["page"] is None or isinstance(s["page"], int), f"bad source page: {s['page']!r}")
        expect(s["heading"] is None or isinstance(s["heading"], str), f"bad source heading: {s['heading']!r}")
        expect(isinstance(s["score"], (int, float)), f"bad source score: {s['score']!r}")
        expect(isinstance(s["cited"], bool), f"bad source cited flag: {s['cited']!r}")
    indexes = [s["index"] for s in sources]
    expect(len(set(indexes)) == len(indexes), f"source indexes repeat: {indexes}")


def names_document(sources, document):
    return any(s.get("document") == document for s in sources)


def cited_numbers(answer):
    """The source numbers an answer cites: `[1]`, `[2, 3]`, `[1][4]`,
    `[2-3]` (a port of the app's own rule, src/chat/citations.rs)."""

    def number(text):
        text = text.strip()
        if re.fullmatch(r"\+?[0-9]+", text) and int(text) <= 0xFFFFFFFF:
            return int(text)
        return None

    cited = set()
    rest = answer
    while (start := rest.find("[")) >= 0:
        rest = rest[start + 1 :]
        close = rest.find("]")
        if close < 0:
            break
        inside = rest[:close]
        if len(inside.encode()) <= 20:
            for part in re.split(r"[,;]", inside):
                bounds = re.split("[-\u2013]", part.strip(), maxsplit=1)
                if len(bounds) == 2:
                    a, b = number(bounds[0]), number(bounds[1])
                    if a is not None and b is not None and a <= b and b - a < 20:
                        cited.update(range(a, b + 1))
                elif number(part) is not None:
                    cited.add(number(part))
        rest = rest[close:]
    return cited


def check_cited_flags(sources, answer):
    cited = cited_numbers(answer)
    wrong = [s["index"] for s in sources if s["cited"] != (s["index"] in cited)]
    expect(not wrong, f"sources {wrong}: cited flags disagree with the citations {sorted(cited)} in {answer!r}")


def check_usage(usage):
    expect(usage is not None, "no usage")
    expect(usage.prompt_tokens > 0, f"prompt_tokens {usage.prompt_tokens}")
    expect(usage.completion_tokens > 0, f"completion_tokens {usage.completion_tokens}")
    total = usage.prompt_tokens + usage.completion_tokens
    expect(usage.total_tokens == total, f"total_tokens {usage.total_tokens} != {total}")


def check_completion_id(cid):
    expect(isinstance(cid, str) and cid.startswith("chatcmpl-"), f"id {cid!r} is not chatcmpl-...")


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


def expect_error(call, error, status, code=None):
    """Runs `call`, which must raise `error` with this status (and code)."""
    try:
        call()
    except error as e:
        expect(e.status_code == status, f"status {e.status_code}, not {status}")
        expect(isinstance(e.body, dict) and isinstance(e.body.get("message"), str), f"error body {e.body!r}")
        expect("type" in e.body and "param" in e.body and "code" in e.body, f"error body {e.body!r}")
        if code is not None:
            expect(e.code == code, f"code {e.code!r}, not {code!r}")
        return Detail(None, f"HTTP {e.status_code}: {e.message[:80]}")
    except openai.APIStatusError as e:
        raise CheckFailed(f"{type(e).__name__} (HTTP {e.status_code}), not {error.__name__}: {e.body!r}")
    raise CheckFailed(f"no error, expected {error.__name__}")


# ---------------------------------------------------------------- checks


def check_models(client, env):
    page = client.models.list()
    expect(page.object == "list", f"object {page.object!r}")
    ids = [m.id for m in page.data]
    for wanted in ("rag", env["plain_model"], env["embedding_model"]):
        expect(wanted in ids, f"{wanted!r} not among {ids}")
    for m in page.data:
        expect(m.object == "model", f"{m.id}: object {m.object!r}")
        expect(isinstance(m.created, int) and isinstance(m.owned_by, str), f"{m.id}: created/owned_by {m!r}")
    return Detail(ids, ", ".join(ids))


def check_grounded_stream(client, env, state):
    stream = client.chat.completions.create(
        model="rag",
        messages=[{"role": "user", "content": env["question"]}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=48,
    )
    chunks = list(stream)
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    if chunks:
        state["streamed"] = (chunks[0].id, text)
    expect(len(chunks) >= 3, f"only {len(chunks)} chunks")
    ids = {c.id for c in chunks}
    expect(len(ids) == 1, f"chunks carry several ids: {sorted(ids)}")
    check_completion_id(chunks[0].id)
    expect(all(c.object == "chat.completion.chunk" for c in chunks), "a chunk's object isn't chat.completion.chunk")

    first = chunks[0]
    expect(first.choices and first.choices[0].delta.role == "assistant", "the first chunk has no assistant role")
    first_sources = sources_of(first)
    expect(names_document(first_sources, env["document"]), f"the first chunk's sources don't name {env['document']}")
    check_source_shapes(first_sources)
    expect(not any(s["cited"] for s in first_sources), "the first chunk's sources are marked cited before any text")

    growth, finish = 0, None
    for c in chunks:
        for choice in c.choices:
            if choice.delta.content:
                growth += 1
            if choice.finish_reason is not None:
                expect(finish is None, "more than one chunk has a finish_reason")
                finish = (c, choice.finish_reason)
    expect(text.strip(), "no text streamed")
    expect(growth >= 2, f"the text came in {growth} content chunk(s), not grown over 2 or more")
    expect(finish is not None, "no chunk has a finish_reason")
    finish_chunk, reason = finish
    expect(reason in ("stop", "length"), f"finish_reason {reason!r}")

    last = chunks[-1]
    expect(last.choices == [], f"the last chunk has choices: {last.choices!r}")
    check_usage(last.usage)

    final_sources = sources_of(finish_chunk)
    expect(names_document(final_sources, env["document"]), f"the finish chunk's sources don't name {env['document']}")
    check_source_shapes(final_sources)
    return Detail((finish_chunk.id, text, final_sources), f"{len(chunks)} chunks, {growth} with text, {reason}")


def check_citations(answered):
    _, text, sources = answered
    check_cited_flags(sources, text)
    cited = [s["index"] for s in sources if s["cited"]]
    return Detail(None, f"cited {cited} of {len(sources)}")


def check_grounded(client, env, state):
    completion = client.chat.completions.create(
        model="rag",
        messages=[{"role": "user", "content": env["question"]}],
        max_tokens=48,
    )
    if completion.choices:
        state["answered"] = (completion.id, completion.choices[0].message.content or "")
    expect(completion.object == "chat.completion", f"object {completion.object!r}")
    check_completion_id(completion.id)
    expect(len(completion.choices) == 1, f"{len(completion.choices)} choices")
    choice = completion.choices[0]
    expect(choice.message.role == "assistant", f"role {choice.message.role!r}")
    answer = choice.message.content or ""
    expect(answer.strip(), "empty answer")
    expect(choice.finish_reason in ("stop", "length"), f"finish_reason {choice.finish_reason!r}")
    check_usage(completion.usage)
    sources = sources_of(completion)
    expect(names_document(sources, env["document"]), f"sources don't name {env['document']}: {sources!r}")
    check_source_shapes(sources)
    return Detail((completion.id, answer, sources), f"{len(sources)} sources, {choice.finish_reason}")


def check_follow_up(client, env, previous):
    earlier_id, answer = previous
    completion = client.chat.completions.create(
        model="rag",
        messages=[
            {"role": "user", "content": env["question"]},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": FOLLOW_UP},
        ],
        max_tokens=48,
    )
    check_completion_id(completion.id)
    expect(completion.id != earlier_id, "the follow-up reuses the earlier completion's id")
    expect((completion.choices[0].message.content or "").strip(), "empty answer")


def plain_answer(client, env, messages):
    completion = client.chat.completions.create(model=env["plain_model"], messages=messages, max_tokens=24)
    expect(completion.object == "chat.completion", f"object {completion.object!r}")
    check_completion_id(completion.id)
    answer = completion.choices[0].message.content or ""
    expect(answer.strip(), "empty answer")
    expect(not sources_of(completion), f"a plain model returned sources: {sources_of(completion)!r}")
    check_usage(completion.usage)
    return Detail(None, f"{answer.strip()[:40]!r}")


def check_plain(client, env):
    return plain_answer(client, env, [{"role": "user", "content": "Say hello in one short sentence."}])


def check_plain_system(client, env):
    return plain_answer(
        client,
        env,
        [
            {"role": "system", "content": "You are a terse assistant. Answer in a few words."},
            {"role": "user", "content": "Name a colour."},
        ],
    )


def check_plain_text_parts(client, env):
    parts = [{"type": "text", "text": "Say hello"}, {"type": "text", "text": " in one short sentence."}]
    return plain_answer(client, env, [{"role": "user", "content": parts}])


def compare_embeddings(response, texts, vectors):
    data = response.data
    expect(len(data) == len(texts), f"{len(data)} embeddings for {len(texts)} texts")
    expect([d.index for d in data] == list(range(len(texts))), f"indexes {[d.index for d in data]}")
    worst = 1.0
    for d, own in zip(data, vectors):
        expect(d.object == "embedding", f"object {d.object!r}")
        expect(len(d.embedding) == len(own), f"{len(d.embedding)} dimensions, the app's own have {len(own)}")
        worst = min(worst, cosine(d.embedding, own))
    expect(worst >= 0.9999, f"cosine with the app's own vector {worst:.6f} < 0.9999")
    expect(response.usage.prompt_tokens > 0, f"prompt_tokens {response.usage.prompt_tokens}")
    return worst


def check_embeddings_base64(client, env):
    """No encoding_format: the SDK asks for base64 and decodes it."""
    raw = client.embeddings.with_raw_response.create(model=env["embedding_model"], input=env["texts"])
    wire = raw.http_response.json()
    expect(wire.get("object") == "list", f"object {wire.get('object')!r}")
    expect(all(isinstance(d.get("embedding"), str) for d in wire["data"]), "asked for base64, got no base64 strings")
    worst = compare_embeddings(raw.parse(), env["texts"], env["vectors"])
    return Detail(None, f"{len(env['texts'])} texts, worst cosine {worst:.6f}")


def check_embeddings_float(client, env):
    response = client.embeddings.create(model=env["embedding_model"], input=env["texts"], encoding_format="float")
    expect(response.object == "list", f"object {response.object!r}")
    worst = compare_embeddings(response, env["texts"], env["vectors"])
    return Detail(None, f"{len(env['texts'])} texts, worst cosine {worst:.6f}")


def check_embeddings_single(client, env):
    response = client.embeddings.create(model=env["embedding_model"], input=env["texts"][0], encoding_format="float")
    worst = compare_embeddings(response, env["texts"][:1], env["vectors"][:1])
    return Detail(None, f"cosine {worst:.6f}")


def error_checks(client, env):
    """(name, call, error, status, code) for each refused request."""
    user = [{"role": "user", "content": "Hello?"}]
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    image = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]

    def chat(client, **kwargs):
        kwargs.setdefault("model", env["plain_model"])
        kwargs.setdefault("messages", user)
        return lambda: client.chat.completions.create(max_tokens=8, **kwargs)

    stranger = OpenAI(api_key=UNKNOWN_KEY, base_url=env["base_url"], timeout=TIMEOUT, max_retries=0)
    client = client.with_options(max_retries=0)
    return [
        ("401 for an unknown key", chat(stranger), openai.AuthenticationError, 401, "invalid_api_key"),
        ("404 for an unknown model", chat(client, model="no-such-model"), openai.NotFoundError, 404, "model_not_found"),
        ("400 for n=2", chat(client, n=2), openai.BadRequestError, 400, None),
        ("400 for tools", chat(client, tools=[tool]), openai.BadRequestError, 400, None),
        (
            "400 for an image part",
            chat(client, messages=[{"role": "user", "content": image}]),
            openai.BadRequestError,
            400,
            None,
        ),
        ("400 for no messages", chat(client, messages=[]), openai.BadRequestError, 400, None),
        (
            "400 when the last message isn't the user's",
            chat(client, messages=[*user, {"role": "assistant", "content": "Hi."}]),
            openai.BadRequestError,
            400,
            None,
        ),
    ]


def feedback(client, cid, body):
    return client.post(f"/chat/completions/{cid}/feedback", body=body, cast_to=httpx2.Response)


def check_feedback(client, cid):
    response = feedback(client, cid, {"rating": "up", "comment": "Clear, and the source says so."})
    expect(response.status_code == 200, f"HTTP {response.status_code}")
    body = response.json()
    expect(body.get("object") == "chat.completion.feedback", f"object {body.get('object')!r}")
    expect(body.get("id") == cid, f"id {body.get('id')!r}, not {cid!r}")
    expect(body.get("rating") == "up", f"rating {body.get('rating')!r}")


def check_feedback_unknown(client):
    cid = f"chatcmpl-{uuid.uuid4()}"
    once = client.with_options(max_retries=0)
    return expect_error(lambda: feedback(once, cid, {"rating": "up"}), openai.NotFoundError, 404)


def check_rate_limited(client, env):
    """Cheap embeddings requests, without retries, until one is refused."""
    limited = client.with_options(max_retries=0)
    for attempt in range(1, 61):
        try:
            limited.embeddings.create(model=env["embedding_model"], input="hi", encoding_format="float")
        except openai.RateLimitError as e:
            expect(e.status_code == 429, f"status {e.status_code}")
            header = e.response.headers.get("retry-after")
            expect(header is not None and re.fullmatch(r"[0-9]+", header.strip()), f"Retry-After {header!r}")
            retry_after = int(header)
            expect(retry_after >= 1, f"Retry-After {retry_after}")
            # The exact wait, which OpenAI's SDKs prefer when it is there.
            ms = e.response.headers.get("retry-after-ms")
            if ms is not None:
                expect(re.fullmatch(r"[0-9]+", ms.strip()) and int(ms) >= 1, f"retry-after-ms {ms!r}")
                rounded_up = -(-int(ms) // 1000)
                expect(rounded_up == retry_after, f"Retry-After {retry_after} isn't retry-after-ms {ms} rounded up")
            note = f"Retry-After {retry_after}" + (f", retry-after-ms {ms}" if ms is not None else "")
            return Detail(retry_after, f"refused after {attempt} requests, {note}")
    raise CheckFailed("60 requests and none refused")


def check_sdk_waits(client, env, retry_after):
    """The SDK, allowed retries, waits as Retry-After (or retry-after-ms,
    which it prefers) says and then succeeds. The wait may be up to a second
    short of the rounded-up Retry-After."""
    retrying = client.with_options(max_retries=3)
    start = time.monotonic()
    raw = retrying.embeddings.with_raw_response.create(
        model=env["embedding_model"], input="hi", encoding_format="float"
    )
    elapsed = time.monotonic() - start
    expect(len(raw.parse().data) == 1, "no embedding after the retries")
    expect(elapsed >= retry_after - 1, f"succeeded after {elapsed:.1f} s, Retry-After was {retry_after}")
    # Retry-After is rounded up: at 2 or more, the bucket was still empty for
    # over a second, so the first attempt must have been refused.
    if retry_after >= 2:
        expect(raw.retries_taken >= 1, f"no retry taken, yet Retry-After was {retry_after}")
    return Detail(None, f"took {elapsed:.1f} s and {raw.retries_taken} retries, Retry-After {retry_after}")


# ---------------------------------------------------------------- main


def skipped(why):
    raise CheckFailed(f"not run: {why}")


def environment():
    names = {
        "base_url": "RAGCHAT_BASE_URL",
        "api_key": "RAGCHAT_API_KEY",
        "question": "RAGCHAT_GROUNDED_QUESTION",
        "document": "RAGCHAT_DOCUMENT_NAME",
        "embedding_model": "RAGCHAT_EMBEDDING_MODEL",
        "own_embeddings": "RAGCHAT_OWN_EMBEDDINGS",
        "plain_model": "RAGCHAT_PLAIN_MODEL",
    }
    missing = [var for var in names.values() if not os.environ.get(var)]
    if missing:
        print(f"openai_sdk.py: missing {', '.join(missing)} (see the docstring)", file=sys.stderr)
        sys.exit(2)
    env = {key: os.environ[var] for key, var in names.items()}
    with open(env["own_embeddings"], encoding="utf-8") as f:
        own = json.load(f)
    env["texts"], env["vectors"] = own["texts"], own["vectors"]
    if not env["texts"] or len(env["texts"]) != len(env["vectors"]):
        print("openai_sdk.py: RAGCHAT_OWN_EMBEDDINGS needs as many vectors as texts (and some)", file=sys.stderr)
        sys.exit(2)
    return env


def main():
    env = environment()
    print(f"openai {openai.__version__} against {env['base_url']}", flush=True)
    client = OpenAI(api_key=env["api_key"], base_url=env["base_url"], timeout=TIMEOUT)
    checks = Checks()
    state = {}  # answers the later checks build on, kept even if their own checks fail

    checks.run("models list rag, the plain and the embedding model", check_models, client, env)
    streamed = checks.run("grounded answer streams with sources and usage", check_grounded_stream, client, env, state)
    if streamed is not None:
        checks.run("streamed sources' cited flags match the answer's [n]", check_citations, streamed)
    answered = checks.run("grounded answer (non-streaming) with sources and usage", check_grounded, client, env, state)
    if answered is not None:
        checks.run("sources' cited flags match the answer's [n]", check_citations, answered)
    previous = state.get("answered") or state.get("streamed") or ("", "I don't know.")
    checks.run("a follow-up with the history sent along is answered", check_follow_up, client, env, previous)
    checks.run("plain model answers without sources", check_plain, client, env)
    checks.run("plain model accepts a system message", check_plain_system, client, env)
    checks.run("plain model accepts text-part content", check_plain_text_parts, client, env)
    checks.run("embeddings, SDK default (base64), match the app's own", check_embeddings_base64, client, env)
    checks.run("embeddings, encoding_format=float, match the app's own", check_embeddings_float, client, env)
    checks.run("embeddings of a single string", check_embeddings_single, client, env)
    for name, call, error, status, code in error_checks(client, env):
        checks.run(name, expect_error, call, error, status, code)
    rated = state.get("answered") or state.get("streamed")
    if rated is None:
        checks.run("feedback on an answer", skipped, "no answer to rate")
    else:
        checks.run("feedback on an answer", check_feedback, client, rated[0])
    checks.run("404 for feedback on an unknown completion", check_feedback_unknown, client)
    retry_after = checks.run("429 with Retry-After over the rate limit", check_rate_limited, client, env)
    if retry_after is None:
        checks.run("the SDK waits out Retry-After, then succeeds", skipped, "no 429 to wait out")
    else:
        checks.run("the SDK waits out Retry-After, then succeeds", check_sdk_waits, client, env, retry_after)

    if checks.failed:
        print(f"{len(checks.failed)} check(s) failed: {', '.join(checks.failed)}", flush=True)
        sys.exit(1)
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
