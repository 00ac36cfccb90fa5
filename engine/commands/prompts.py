"""``retake prompts lint TEXT... | --job JOB.json``: check keyframe prompts are target states.

Prints each finding with its suggested rewrite. Exit 0 when every prompt is clean, 2
when any needs a rewrite (or the job file is bad). Imports nothing heavy: the linter
and the job spec are standard library only.
"""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("prompts", help="keyframe prompts: check that they describe the target state")
    actions = parser.add_subparsers(dest="prompts_command", metavar="ACTION")
    actions.required = True
    lint = actions.add_parser("lint", help="flag change-style and negative prompts, with a rewrite for each")
    lint.add_argument("text", nargs="*", metavar="TEXT", help="prompts to check (quote each one)")
    lint.add_argument("--job", metavar="JOB.json", help="check every keyframe prompt of this job")
    lint.set_defaults(func=_run_lint)


def _run_lint(args: argparse.Namespace) -> int:
    from engine.errors import InputError
    from engine.generate.prompts import lint_prompt

    prompts: list[tuple[str, str]] = [(f"prompt {i + 1}", text) for i, text in enumerate(args.text)]
    if args.job:
        from engine.job import load_job

        job = load_job(args.job)
        prompts += [(f"$.keyframes[{i}].prompt (frame {key.frame})", key.prompt)
                    for i, key in enumerate(job.keyframes) if key.prompt]
    if not args.text and not args.job:
        raise InputError("nothing to check", hint='give prompts (retake prompts lint "a purple sky") or --job JOB.json')
    needs_rewrite = 0
    for where, text in prompts:
        findings = lint_prompt(text)
        if not findings:
            print(f"ok    {where}: {text!r}")
            continue
        needs_rewrite += 1
        print(f"fix   {where}: {text!r}")
        for finding in findings:
            start, end = finding.span
            print(f"      {finding.kind} at {start}-{end} {text[start:end]!r}: {finding.message}")
            print(f"      suggest: {finding.suggestion}")
    if args.job and not prompts:
        print("no keyframe of the job has a prompt")
    if needs_rewrite:
        print(f"retake prompts lint: {needs_rewrite} of {len(prompts)} prompt(s) need a rewrite: describe the frame "
              "as it should be (\"a purple sky over the mountains\"), not the change, and without negatives")
        return 2
    return 0
