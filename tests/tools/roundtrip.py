"""Reads exports back with independent readers -- Python's csv and json modules and jq --
and compares every cell with the expected values export_roundtrip_test wrote.

argv: expected.tsv csv-neutralised csv-plain json jsonl
expected.tsv: a header line of column names, then one line per row; cells are tab-separated
and typed, with text hex-encoded so nothing needs escaping: A (absent), N (null),
S<hex> text, I<int> integer, T<iso> time, J<hex> compact JSON, B0/B1 boolean.
Prints "ok" or the differences, one per line."""
import csv
import json
import subprocess
import sys

exp_path, csv_neutral, csv_plain, json_path, jsonl_path = sys.argv[1:6]
with open(exp_path, encoding="utf-8") as f:
    lines = f.read().split("\n")
columns = lines[0].split("\t")
rows = [line.split("\t") for line in lines[1:] if line]
problems = []


def typed(cell):
    kind, body = cell[0], cell[1:]
    if kind in "SJ":
        body = bytes.fromhex(body).decode("utf-8")
    return kind, body


def csv_text(kind, body, neutralise):
    if kind in "AN":
        return ""
    if kind == "B":
        return "true" if body == "1" else "false"
    if kind == "S" and neutralise and body[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + body
    return body


def check_csv(path, neutralise):
    with open(path, encoding="utf-8", newline="") as f:
        got = list(csv.reader(f))
    if got[0] != columns:
        problems.append(f"{path}: header {got[0]}")
    if len(got) - 1 != len(rows):
        problems.append(f"{path}: {len(got) - 1} rows, expected {len(rows)}")
    for r, (want, have) in enumerate(zip(rows, got[1:])):
        for c, cell in enumerate(want):
            kind, body = typed(cell)
            expected = csv_text(kind, body, neutralise)
            ok = have[c] == expected if kind != "J" else json.loads(have[c]) == json.loads(body)
            if not ok:
                problems.append(f"{path} row {r} {columns[c]}: {have[c]!r} != {expected!r}")


def check_object(where, obj, want, exact_ints=True):
    if list(obj.keys()) != [columns[c] for c, cell in enumerate(want) if cell[0] != "A"]:
        problems.append(f"{where}: keys {list(obj.keys())}")
    for c, cell in enumerate(want):
        kind, body = typed(cell)
        name = columns[c]
        if kind == "A":
            continue
        value = obj.get(name, "<missing>")
        if kind == "N":
            ok = value is None
        elif kind in "ST":
            ok = value == body
        elif kind == "I":
            ok = value == int(body) if exact_ints or abs(int(body)) <= 2**53 else float(value) == float(int(body))
        elif kind == "B":
            ok = value is (body == "1")
        else:
            ok = value == json.loads(body)
        if not ok:
            problems.append(f"{where} {name}: {value!r} != {kind}{body!r}")


check_csv(csv_neutral, True)
check_csv(csv_plain, False)
with open(json_path, encoding="utf-8") as f:
    doc = json.load(f)  # Python ints are exact at any size
if len(doc) != len(rows):
    problems.append(f"{json_path}: {len(doc)} rows")
for r, (obj, want) in enumerate(zip(doc, rows)):
    check_object(f"{json_path} row {r}", obj, want)
with open(jsonl_path, encoding="utf-8") as f:
    jsonl = [json.loads(line) for line in f]
for r, (obj, want) in enumerate(zip(jsonl, rows)):
    check_object(f"{jsonl_path} row {r}", obj, want)
# jq 1.6 reads numbers as doubles: integers past 2^53 are compared as jq can hold them.
out = subprocess.run(["jq", "-c", ".[]", json_path], capture_output=True, text=True, check=True).stdout
jq_rows = [json.loads(line) for line in out.splitlines()]
if len(jq_rows) != len(rows):
    problems.append(f"jq: {len(jq_rows)} rows")
for r, (obj, want) in enumerate(zip(jq_rows, rows)):
    check_object(f"jq row {r}", obj, want, exact_ints=False)
print("\n".join(problems) if problems else "ok")
