"""A real MCP client (the official Python SDK, `mcp` from PyPI) against `unloop mcp` over stdio.

    client.py UNLOOP_BINARY REPO_ROOT [--live]

Lists the tools, diagnoses a shipped bundle and checks the cause, reads the bundle, audits a
manifest, checks that `debug` (a write) is refused without --allow-debug and offered with it,
and with --live diagnoses the testbed's command-not-found scenario. Exits non-zero on the
first failed check.
"""

import asyncio
import json
import os
import sys
import time

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


def check(ok, what, detail=""):
    if not ok:
        print(f"FAIL: {what}\n{detail}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def report_of(result):
    """The JSON report: structured content, and the same JSON as text."""
    text = "".join(c.text for c in result.content if getattr(c, "type", "") == "text")
    as_text = json.loads(text)
    structured = result.structured_content
    check(structured == as_text, "structured content and text carry the same JSON")
    return structured


async def session(binary, args, body):
    # The SDK hands its child only a few variables (HOME, PATH, ...): KUBECONFIG is passed as
    # an MCP client's configuration would.
    env = {"KUBECONFIG": os.environ["KUBECONFIG"]} if "KUBECONFIG" in os.environ else None
    params = StdioServerParameters(command=binary, args=args, env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            init = await s.initialize()
            check(init.server_info.name == "unloop", "the server names itself unloop")
            await body(s)


async def main():
    binary, root = sys.argv[1], sys.argv[2]
    live = "--live" in sys.argv[3:]
    bundle = f"{root}/testbed/scenarios/command-not-found/bundle.json.gz"
    manifest = f"{root}/testbed/scenarios/missing-configmap/manifest.yaml"

    async def read_only(s):
        tools = {t.name: t for t in (await s.list_tools()).tools}
        check(set(tools) == {"diagnose", "audit", "read_bundle"}, "read-only tools listed", tools.keys())
        check(all(t.annotations.read_only_hint for t in tools.values()), "each marked read-only")
        for name, title in [("diagnose", "unloop diagnose -o json"), ("audit", "unloop audit -o json")]:
            out = tools[name].output_schema or {}
            check(out.get("title") == title,
                  f"{name} declares its output schema", out.keys())

        r = await s.call_tool("diagnose", {"bundle": bundle})
        check(not r.is_error, "diagnose on a bundle succeeds", r.content)
        rep = report_of(r)
        causes = [d["causes"][0]["id"] for d in rep["diagnoses"]]
        check(causes == ["command-not-found"], "diagnose finds command-not-found", causes)
        check(rep["diagnoses"][0]["backoff"]["delaySecs"] == 160, "with the backoff", rep["diagnoses"][0].get("backoff"))

        r = await s.call_tool("read_bundle", {"path": bundle})
        summary = report_of(r)
        check(summary["counts"]["pods"] >= 1 and summary["capturedAt"], "read_bundle summarises", summary)

        r = await s.call_tool("audit", {"paths": [manifest]})
        check(not r.is_error, "audit of manifests succeeds", r.content)
        audit = report_of(r)
        check("findings" in audit and len(audit["findings"]) > 0, "audit finds what crashes", audit)

        r = await s.call_tool("diagnose", {"bundle": "/nonexistent.json.gz"})
        check(r.is_error and "No such file" in r.content[0].text, "a missing bundle is a tool error", r.content)

        r = await s.call_tool("debug", {"pod": "api", "namespace": "command-not-found", "dryRun": True})
        check(r.is_error and "refused" in r.content[0].text and "--allow-debug" in r.content[0].text,
              "debug is refused without --allow-debug", r.content)

        if live:
            t = time.monotonic()
            r = await s.call_tool("diagnose", {"namespace": "command-not-found"})
            check(not r.is_error, "diagnose on the live testbed succeeds", r.content)
            rep = report_of(r)
            causes = [d["causes"][0]["id"] for d in rep["diagnoses"]]
            check(causes == ["command-not-found"], f"live diagnose finds command-not-found ({time.monotonic() - t:.1f}s)", causes)

    async def with_debug(s):
        tools = {t.name: t for t in (await s.list_tools()).tools}
        check("debug" in tools and tools["debug"].annotations.read_only_hint is False,
              "--allow-debug offers debug, not read-only", tools.keys())

    await session(binary, ["mcp"], read_only)
    await session(binary, ["mcp", "--allow-debug"], with_debug)


asyncio.run(main())
