#!/usr/bin/env python3
"""Drives a run of `greet` (examples/hello) over the control socket, from start to end.

Submits the run, follows its log, approves its gate (`gate.decide`) and answers its input step
(`input.submit`) when the log says the run waits for them, follows the log to the end, and
prints the final state. The whole run is followed by one `run.logs` stream; the gate and the
input step are answered on the same connection while that stream stays open.

    python3 example.py --project-path ../hello [--name Ana] [--count 2] [--transcript FILE]

Exit code: 0 when the run succeeded, 1 when it did not or on an error, 3 when no daemon runs
for the project.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from charter_client import CharterError, Client

#: Seconds to wait for each response: the run's steps take milliseconds; a cap, not a pace.
RESPONSE_TIMEOUT = 30.0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    transcript = open(args.transcript, "w", encoding="utf-8") if args.transcript else None
    try:
        with Client.connect(args.project_path, timeout=RESPONSE_TIMEOUT, transcript=transcript) as client:
            say(f"connected to charter-daemon {client.hello['daemon_version']} (pid {client.hello['pid']})")
            return drive_greet(client, args.name, args.count)
    except CharterError as error:
        sys.stderr.write(f"error: {error}\n")
        return 3 if error.code == "DAEMON_NOT_RUNNING" else 1
    finally:
        if transcript is not None:
            transcript.close()


def drive_greet(client: Client, name: str, count: int) -> int:
    ack = client.call("run.submit", {"workflow_id": "greet", "inputs": {"name": name}})
    run_id = ack["run_id"]
    say(f"run {run_id} {ack['state']}")

    final_state = None
    for batch in client.stream("run.logs", {"run_id": run_id, "follow": True}):
        for entry in batch["entries"]:
            print_entry(entry)
            if entry["type"] == "run.waiting":
                answer(client, run_id, entry["data"], count)
        if batch["done"]:
            final_state = batch["state"]

    run = client.call("runs.show", {"run_id": run_id})
    say(f"run {run_id} {run['state']} (the log ended with {final_state})")
    for step in run["steps"]:
        say(f"  {step['id']:<8} {step['kind']:<6} {step['state']}")
    return 0 if run["state"] == "succeeded" else 1


def answer(client: Client, run_id: str, waiting: dict[str, Any], count: int) -> None:
    """Answers what the run waits at: approves a gate, gives `count` to an input step."""
    step_id = waiting["step_id"]
    if waiting["kind"] == "gate":
        ack = client.call(
            "gate.decide",
            {"run_id": run_id, "step_id": step_id, "decision": "approve", "by": "python-example"},
        )
        say(f"approved gate {step_id}: run {ack['state']}")
    else:
        ack = client.call(
            "input.submit",
            {"run_id": run_id, "step_id": step_id, "answers": {"count": count}, "by": "python-example"},
        )
        say(f"answered input {step_id} (count={count}): run {ack['state']}")


def print_entry(entry: dict[str, Any]) -> None:
    data = entry["data"] if isinstance(entry["data"], dict) else {}
    if entry["type"] == "step.output":
        sys.stdout.write(str(data.get("text", "")))
        return
    details = " ".join(f"{key}={json.dumps(value)}" for key, value in data.items() if key != "inputs")
    say(f"[{entry['ts']}] {entry['type']} {details}".rstrip())


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Drive a run of greet over the control socket.")
    parser.add_argument(
        "--project-path",
        default=os.environ.get("CHARTER_PROJECT_PATH", "."),
        help="the project root (default: $CHARTER_PROJECT_PATH, else the current directory)",
    )
    parser.add_argument("--name", default="Ana", help="the greet input `name` (default: Ana)")
    parser.add_argument("--count", type=int, default=2, help="the answer `count` (default: 2)")
    parser.add_argument(
        "--transcript",
        default=os.environ.get("CHARTER_CLIENT_TRANSCRIPT"),
        help="write every line sent and received to this file, as NDJSON "
        "(default: $CHARTER_CLIENT_TRANSCRIPT; none when unset)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
