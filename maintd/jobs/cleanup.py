"""The `cleanup` job: remove old files and directories matching settings.cleanup.rules.

Per rule: scan the root by descriptors (maintd.cleanup.tree), plan purely (maintd.cleanup.plan), then remove
(or, in a dry run, list). A missing root, an unreadable directory or a file that cannot be removed is a warning;
the rest goes on. Never follows a symlink out of a root, never removes a root.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ..cleanup import tree
from ..cleanup.patterns import compile_pattern
from ..cleanup.plan import DIR, Deletion, needs_subtree, plan
from ..config import CleanupRule
from ..errors import UsageError
from .base import JobContext, JobResult, JobSpec
from ..units import human_bytes

REPORT_LINES_PER_RULE = 100
"""Report lines listing removed entries per rule; the rest is counted ("... and 12 more")."""


def parse_args(args: Mapping[str, Any]) -> dict[str, Any]:
    extra = set(args) - {"dry_run"}
    if extra:
        raise UsageError(f"cleanup takes no argument(s) {', '.join(sorted(extra))} (only dry_run)")
    value = args.get("dry_run", False)
    if isinstance(value, bool):
        return {"dry_run": value}
    text = str(value).strip().lower()
    if text not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        raise UsageError(f"dry_run must be true or false, not {value!r}")
    return {"dry_run": text in ("1", "true", "yes", "on")}


def describe(root: str, deletion: Deletion) -> str:
    entry = deletion.entry
    where = os.path.join(root, entry.path)
    if entry.kind == DIR:
        return f"{where}/ (dir: {entry.files} file(s), {human_bytes(entry.size)})"
    return f"{where} ({entry.kind}, {human_bytes(entry.size)})"


def run(ctx: JobContext, args: dict[str, Any]) -> JobResult:
    dry_run = bool(args.get("dry_run")) or ctx.dry_run
    now = ctx.now().timestamp()
    totals = {"files": 0, "dirs": 0, "bytes": 0}
    lines: list[str] = []
    rules_out: list[dict[str, Any]] = []
    rules = ctx.settings.cleanup.rules
    for number, rule in enumerate(rules, start=1):
        ctx.check_cancelled()
        ctx.progress(phase="cleanup", message=f"rule {number}/{len(rules)}: {rule.root}")
        counted = _run_rule(ctx, rule, now, dry_run, lines)
        rules_out.append({"root": str(rule.root), "patterns": list(rule.patterns), **counted})
        for key in totals:
            totals[key] += counted[key]
    verb = "would remove" if dry_run else "removed"
    summary = (f"{verb} {totals['files']} file(s), {totals['dirs']} dir(s), {human_bytes(totals['bytes'])} "
               f"({len(rules)} rule(s))")
    if not rules:
        lines.append("no cleanup rules configured (cleanup.rules)")
    ctx.log.info("cleanup.finished", dry_run=dry_run, **totals)
    return JobResult(summary, data={"dry_run": dry_run, **totals, "rules": rules_out, "report": lines})


def _run_rule(ctx: JobContext, rule: CleanupRule, now: float, dry_run: bool, lines: list[str]) -> dict[str, int]:
    counted = {"files": 0, "dirs": 0, "bytes": 0, "problems": 0}
    root = str(rule.root)
    try:
        for pattern in rule.patterns:
            compile_pattern(pattern)
    except ValueError as err:
        ctx.warn(f"cleanup rule {root}: {err}; rule skipped")
        counted["problems"] += 1
        return counted
    try:
        root_fd = tree.open_root(root)
    except FileNotFoundError:
        ctx.warn(f"cleanup root {root} does not exist; rule skipped")
        counted["problems"] += 1
        return counted
    except OSError as err:
        ctx.warn(f"cleanup root {root} cannot be opened: {err.strerror}; rule skipped")
        counted["problems"] += 1
        return counted
    try:
        scanned = tree.scan(root_fd, root, descend=lambda rel: needs_subtree(rule, rel),
                            emit_nested=rule.recursive)
        for problem in scanned.problems:
            ctx.warn(problem)
        counted["problems"] += len(scanned.problems)
        deletions = plan(rule, scanned.entries, now)
        listed = 0
        for deletion in deletions:
            ctx.check_cancelled()
            shown = describe(root, deletion)
            if not dry_run:
                try:
                    tree.remove(root_fd, deletion)
                except (OSError, tree.Changed) as err:
                    ctx.warn(f"cannot remove {os.path.join(root, deletion.entry.path)}: "
                             f"{getattr(err, 'strerror', None) or err}")
                    counted["problems"] += 1
                    continue
                ctx.log.debug("cleanup.removed", path=os.path.join(root, deletion.entry.path),
                              kind=deletion.entry.kind, bytes=deletion.entry.size)
            counted["files"] += deletion.entry.files
            counted["dirs"] += deletion.entry.dirs
            counted["bytes"] += deletion.entry.size
            listed += 1
            if listed <= REPORT_LINES_PER_RULE:
                lines.append(f"{'would remove' if dry_run else 'removed'} {shown}")
        if listed > REPORT_LINES_PER_RULE:
            lines.append(f"... and {listed - REPORT_LINES_PER_RULE} more under {root}")
    finally:
        os.close(root_fd)
    ctx.log.info("cleanup.rule_done", path=root, dry_run=dry_run, files=counted["files"], dirs=counted["dirs"],
                 bytes=counted["bytes"], problems=counted["problems"])
    return counted


JOB = JobSpec(name="cleanup", run=run, parse_args=parse_args, mutating=True, locks=(),
              description="Remove old temporary files and directories matching the cleanup rules")
