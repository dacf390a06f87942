"""``citewise tune``: learn a collection's retrieval settings from labelled queries."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from ..errors import CitewiseError
from ..tuning import (
    EmbedderReport,
    TuneReport,
    labels_from_feedback,
    labels_from_file,
    reset,
    tune,
    tune_embedder,
)
from .common import Context, console, errors, esc, to_json


@click.command("tune")
@click.argument("labels", required=False, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--collection", "-c", help="Collection to tune (default: beir-<name> for BEIR, else default)."
)
@click.option("--split", default="train", show_default=True, help="BEIR qrels split.")
@click.option(
    "--feedback",
    is_flag=True,
    help="Also learn from the server's 👍/👎 answer feedback (alone when no LABELS).",
)
@click.option("--folds", default=5, show_default=True, help="Cross-validation folds.")
@click.option("--dry-run", is_flag=True, help="Report only; save nothing.")
@click.option("--show", is_flag=True, help="Show the collection's tuned settings and stop.")
@click.option("--reset", "forget", is_flag=True, help="Forget the collection's tuned settings.")
@click.option(
    "--finetune-embedder",
    "finetune",
    is_flag=True,
    help="Also fine-tune the embedding model on the labels (needs the finetune "
    "extra: PyTorch); re-embeds the collection when a held-out fold improves.",
)
@click.option("--epochs", default=3, show_default=True, help="Fine-tuning epochs.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def tune_command(
    ctx: Context,
    labels: Path | None,
    collection: str | None,
    split: str,
    feedback: bool,
    folds: int,
    dry_run: bool,
    show: bool,
    forget: bool,
    finetune: bool,
    epochs: int,
    as_json: bool,
) -> None:
    """Learn a collection's retrieval settings from labelled queries.

    LABELS is a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or a JSONL file of
    {"query": ..., "relevant": [source, ...]} lines, as for `citewise eval retrieval`.
    Fusion, its weight, BM25 column weights, passage aggregation and min_relevance are
    chosen by cross-validation; they are saved to the collection only when the held-out
    folds say they help, and searches of that collection use them from then on.
    """
    workspace = ctx.workspace()
    if show or forget:
        name = collection or "default"
        if forget:
            had = reset(workspace, name)
            console.print(
                f"{name}: tuned settings {'removed' if had else 'were not set'}", markup=False
            )
            return
        saved = workspace.store.collection_settings(workspace.collection(name, create=False).id)
        console.print_json(json.dumps(saved[0] if saved else None))
        return
    if labels is None and not feedback:
        raise CitewiseError("give LABELS (a BEIR folder or a JSONL file) or --feedback")
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    if labels is not None:
        with console.status("Loading labels…"):
            (queries, qrels), collection = labels_from_file(workspace, labels, collection, split)
    collection = collection or "default"
    if feedback:
        more_queries, more_qrels = labels_from_feedback(workspace, collection)
        queries, qrels = {**queries, **more_queries}, {**qrels, **more_qrels}
    with console.status("Searching…") as status:
        report = tune(
            workspace,
            (queries, qrels),
            collection,
            folds,
            dry_run,
            lambda done, total: status.update(f"Searching… {done}/{total} labelled queries"),
        )
    embedder = None
    if finetune:
        with console.status("Fine-tuning the embedder…") as status:
            embedder = tune_embedder(
                workspace,
                (queries, qrels),
                collection,
                epochs,
                dry_run,
                lambda stage, done, total: status.update(f"Fine-tuning: {stage} {done}/{total}"),
            )
    if as_json:
        body = report.to_json() | ({"embedder": embedder.to_json()} if embedder else {})
        click.echo(to_json(body))
        return
    _print(report, dry_run)
    if embedder:
        _print_embedder(embedder, dry_run)


def _print(report: TuneReport, dry_run: bool) -> None:
    title = (
        f"{report.queries} labelled queries · {len(report.folds)} folds · "
        f"{report.combinations} combinations · collection {esc(report.collection)}"
    )
    table = Table("held-out fold", "queries", "current nDCG@10", "tuned nDCG@10", title=title)
    for number, fold in enumerate(report.folds, start=1):
        table.add_row(str(number), str(fold.queries), f"{fold.current:.3f}", f"{fold.tuned:.3f}")
    table.add_row("all", str(report.queries), f"{report.before:.3f}", f"{report.after:.3f}")
    console.print(table)
    before, after = report.relevance_before, report.relevance_after
    console.print(
        f"min_relevance {before.threshold:.2f}: keeps {before.relevant_kept:.0%} of relevant "
        f"passages, drops {before.others_dropped:.0%} of the others (F2 {before.f2:.3f}); "
        f"tuned {after.threshold:.2f} held out: {after.relevant_kept:.0%} / "
        f"{after.others_dropped:.0%} (F2 {after.f2:.3f})"
    )
    changed = {k: v for k, v in report.chosen.items() if report.current.get(k) != v}
    console.print(
        "chosen: " + (json.dumps(changed) if changed else "the current settings"), markup=False
    )
    for note in report.notes:
        errors.print(f"[yellow]note:[/yellow] {esc(note)}")
    if report.saved:
        console.print(f"saved to collection {report.collection}", markup=False)
    elif dry_run and changed:
        console.print("dry run: nothing saved")


def _print_embedder(report: EmbedderReport, dry_run: bool) -> None:
    console.print(
        f"embedder fine-tuned on {report.training_examples} examples "
        f"({report.seconds / 60:.1f} min); held-out fold of {report.held_out_queries} "
        f"queries: hybrid nDCG@10 {report.before:.3f} → {report.after:.3f}, "
        f"dense {report.dense_before:.3f} → {report.dense_after:.3f}"
    )
    if report.saved:
        console.print(
            f"collection {report.collection} re-embedded with {report.embedder}", markup=False
        )
    elif report.after <= report.before:
        errors.print("[yellow]note:[/yellow] the fine-tuned embedder did not help; not saved")
    elif dry_run:
        console.print("dry run: the embedder was not saved")


COMMANDS = [tune_command]
