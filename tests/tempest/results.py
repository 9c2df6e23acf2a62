"""Reads a subunit v2 stream (`stestr last --subunit`) on stdin and prints one
JSON object per test on stdout: {"id", "status", "reason"}.

Run with the Python of the Tempest virtualenv (python-subunit and testtools
come with Tempest) by tests/tempest.rs, which turns the lines into
docs/tempest-results.md and checks them against tests/tempest/expected-failures.txt.

status is subunit's: success, skip, fail, xfail, uxsuccess (also exists,
inprogress for incomplete streams). reason is the skip reason, or for a
failure the last line of its traceback that says what went wrong.
"""

import json
import re
import sys

import subunit
import testtools

# "tempest.api...Test.test_x[id-...,negative]" -> "tempest.api...Test.test_x"
ATTRS = re.compile(r"\[[^\]]*\]$")


def text_of(details, name):
    content = details.get(name)
    if content is None:
        return ""
    try:
        return b"".join(bytes(c) for c in content.iter_bytes()).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - a broken attachment is just no reason
        return ""


def failure_reason(details):
    tb = text_of(details, "traceback")
    lines = [line.strip() for line in tb.splitlines() if line.strip()]
    # Tempest's exceptions put the server's answer on a "Details: ..." line
    # after the exception line; show both when present.
    for i in range(len(lines) - 1, -1, -1):
        if re.match(r"^[\w.]+(Error|Exception|Failure|Fault|Conflict|NotFound|"
                    r"Forbidden|BadRequest|Unauthorized|TimeoutException|"
                    r"InvalidContentType|MismatchError)\b.*:", lines[i]) or \
                lines[i].startswith(("testtools.matchers", "AssertionError")):
            reason = lines[i]
            if i + 1 < len(lines) and lines[i + 1].startswith("Details:"):
                reason += " " + lines[i + 1]
            return reason
    return lines[-1] if lines else ""


def main():
    results = []

    def on_test(test):
        status = test["status"]
        details = test["details"]
        if status == "skip":
            reason = text_of(details, "reason").strip()
        elif status in ("fail", "uxsuccess"):
            reason = failure_reason(details)
        else:
            reason = ""
        results.append({
            "id": ATTRS.sub("", test["id"]),
            "status": status,
            "reason": " ".join(reason.split())[:400],
        })

    stream = subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name="stdout")
    result = testtools.StreamToDict(on_test)
    result.startTestRun()
    try:
        stream.run(result)
    finally:
        result.stopTestRun()
    for r in sorted(results, key=lambda r: r["id"]):
        print(json.dumps(r))


if __name__ == "__main__":
    main()
