#!/usr/bin/env python3
"""Builds the two-turn follow-up set (tests/fixtures/followups/policyqa.json)
from the long-document eval's own data (PolicyQA, tests/fixtures/policyqa).

For each document, a question Q2 becomes a follow-up to an earlier question
Q1 of the same document when both name the same topic: the longest run of
words they share that holds at least one content word (with a determiner or
possessive in front: "my location data", "the cookies"). In Q2 that phrase
is replaced by a pronoun ("it", or "them" for a plural), so the follow-up
refers to the topic only through the first turn:

    Q1  "Do you collect my location data?"
    Q2  "Will you share my location data with advertisers?"
    ->  "Will you share it with advertisers?"

The first turn's assistant reply is Q1's answer text. Deterministic: the
same input gives the same file. Usage: make-followups.py [max per document]
"""
import gzip
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests/fixtures"
PER_DOCUMENT = int(sys.argv[1]) if len(sys.argv) > 1 else 8

STOPWORDS = set("""a an the and or of to in on for with by at from about as is are was were be been
being do does did you your yours my mine our ours we i me us they them their it its this that these
those what which who whom how when where why will would can could should may might must shall have
has had any all some such not no if then than so there here other else use used using""".split())
# Verbs the questions use around their topics: a topic is a noun phrase,
# so a run holding one of these is not a topic.
VERBS = set("""collect collected collects share shared shares sell sold track tracks store stored protect
protected disclose disclosed keep kept provide provided give given obtain obtained retain retained
delete deleted access accessed change changed update updated inform informed notify notified contact
send sent receive received apply applies ask asked tell let make made get take taken leak reveal
happen happens mean means do does opt choose chosen combine combined transfer transferred request
requested fulfill edit unsubscribe regards before after ways way type types kind""".split())
# Words that make the phrase after them part of a longer one ("other sites").
LEADING_MODIFIERS = {"a", "an", "other", "any", "some", "such", "all", "no", "more", "most", "each", "every"}
DETERMINERS = {"my", "your", "our", "their", "the", "this", "that", "these", "those", "its", "his", "her"}


def words(text):
    return re.findall(r"[A-Za-z0-9']+", text)


def shared_topic(q1, q2, common):
    """The longest run of words of q2 (lower-cased) that q1 also has and
    that holds a specific content word (not one of the `common` words most
    questions use, like "information"); None if there is none."""
    a = [w.lower() for w in words(q1)]
    b = [w.lower() for w in words(q2)]
    best = None
    for i in range(len(b)):
        for j in range(i + 1, len(b) + 1):
            run = b[i:j]
            if not any(w not in STOPWORDS and w not in common and len(w) > 3 for w in run):
                continue
            # A noun phrase: no verbs, adverbs, participles or possessives,
            # and no function words inside (a determiner may lead).
            if any(w in VERBS or w.endswith(("'s", "ly", "ing", "ed")) for w in run):
                continue
            if any(w in STOPWORDS for w in run[1:]):
                continue
            if run[0] in STOPWORDS and run[0] not in DETERMINERS:
                continue
            if run[-1] in STOPWORDS:
                continue
            if any(a[k:k + len(run)] == run for k in range(len(a) - len(run) + 1)):
                if best is None or len(run) > len(best):
                    best = run
    return best


def replace_topic(q2, topic):
    # Take a determiner or possessive in front along with the topic.
    pattern = r"\b(?:(?:%s)\s+)?%s\b" % (
        "|".join(sorted(DETERMINERS)),
        r"\s+".join(re.escape(w) for w in topic),
    )
    pronoun = "them" if topic[-1].endswith("s") and not topic[-1].endswith("ss") else "it"
    found = re.search(pattern, q2, flags=re.IGNORECASE)
    if found is None:
        return None
    # The phrase must be a whole noun phrase: not followed by another noun
    # ("data collection") nor led by an article or modifier ("a third party",
    # "user's data", "first party data").
    before = words(q2[: found.start()])
    after = words(q2[found.end():])
    if after and after[0].lower() not in STOPWORDS | VERBS:
        return None
    if before and before[-1].lower() == "to" and len(topic) == 1:
        return None  # most likely an infinitive ("to edit"), not a noun
    if before and (before[-1].lower() in LEADING_MODIFIERS or
                   before[-1].lower() not in STOPWORDS | VERBS):
        return None
    replaced = q2[: found.start()] + pronoun + q2[found.end():]
    replaced = replaced[0].upper() + replaced[1:]
    # A follow-up must not still name the topic some other way.
    if all(w in STOPWORDS or len(w) <= 3 for w in (x.lower() for x in words(replaced))):
        return None
    return replaced


def main():
    splits = [json.load(gzip.open(FIXTURES / f"policyqa/{split}.json.gz")) for split in ("dev", "test")]
    # Words in more than 2 % of all questions name no particular topic.
    counts, total = {}, 0
    for data in splits:
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    total += 1
                    for w in {w.lower() for w in words(qa["question"])}:
                        counts[w] = counts.get(w, 0) + 1
    common = {w for w, n in counts.items() if n > total * 0.02}
    pairs = []
    for data in splits:
        for article in data["data"]:
            key = article["title"].replace("/", "-").replace("\\", "-") + ".txt"
            questions = [
                (qa["id"], qa["question"].strip(), [x["text"].strip() for x in qa["answers"] if x["text"].strip()])
                for paragraph in article["paragraphs"]
                for qa in paragraph["qas"]
            ]
            questions = [q for q in questions if q[2]]
            made, used = 0, set()
            for i, (id2, q2, answers2) in enumerate(questions):
                if made >= PER_DOCUMENT:
                    break
                for id1, q1, answers1 in reversed(questions[:i]):
                    if q1.lower() == q2.lower() or id1 in used:
                        continue
                    topic = shared_topic(q1, q2, common)
                    if topic is None:
                        continue
                    follow_up = replace_topic(q2, topic)
                    if follow_up is None or follow_up.lower() == q2.lower():
                        continue
                    pairs.append({
                        "id": id2,
                        "document": key,
                        "first": q1,
                        "first_answer": answers1[0],
                        "follow_up": follow_up,
                        "standalone": q2,
                        "answers": answers2,
                        "topic": " ".join(topic),
                    })
                    used.add(id1)
                    made += 1
                    break
    out = FIXTURES / "followups/policyqa.json"
    out.write_text(json.dumps({
        "source": "made by scripts/make-followups.py from tests/fixtures/policyqa (PolicyQA dev + test)",
        "pairs": pairs,
    }, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(pairs)} follow-ups -> {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
