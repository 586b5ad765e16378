"""CLI commands to look at results and share models: ``view`` and ``push-model``.

Thin layer over :mod:`blemore.view` (one static HTML file for runs, ablations and predictions)
and :mod:`blemore.hub` (model bundles on the Hugging Face Hub). Library errors
(:class:`~blemore.errors.BlemoreError`) are turned into one ``error: ...`` paragraph by the
main group.
"""
from __future__ import annotations

import webbrowser
from pathlib import Path

import click


@click.command("view")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="report.html", show_default=True,
              help="The HTML file to write.")
@click.option("--copy-media", is_flag=True,
              help="Copy the clips' media into <output stem>_media/ beside the HTML file (default: link them "
                   "by relative path).")
@click.option("--title", default=None, help="Page title.")
@click.option("--open", "open_", is_flag=True, help="Open the file in the default browser.")
def view_cmd(paths, output, copy_media, title, open_):
    """Write one self-contained HTML file for run folders, ablation folders or predictions.

    PATHS: run folders (results.json), ablation folders (ablation.json), several runs (compared
    side by side), or a predictions file written by ``blemore predict -o OUT.json`` (OUT.json,
    OUT.csv or OUT.timelines.json). No server and no network are needed to read it.
    """
    from blemore.view import write_view

    out = write_view(list(paths), output, copy_media=copy_media, title=title)
    click.echo(f"View: {out} ({out.stat().st_size / 1024:.0f} KiB)")
    if open_:
        webbrowser.open(Path(out).resolve().as_uri())


@click.command("push-model")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("repo_id")
@click.option("--revision", default=None, help="Branch to push to (default: main).")
@click.option("--private", is_flag=True, help="Create the repository as private.")
@click.option("--token", default=None, envvar="HF_TOKEN", help="Hugging Face token (default: HF_TOKEN or the saved login).")
@click.option("--message", default=None, help="Commit message.")
def push_model_cmd(model_dir, repo_id, revision, private, token, message):
    """Upload a model bundle folder to the Hugging Face Hub, with a generated model card.

    Load it back with ``blemore predict hf://REPO_ID[@REVISION] CLIP...`` or
    ``blemore.load_model("hf://REPO_ID")``.
    """
    from blemore.hub import push_model

    url = push_model(model_dir, repo_id, revision=revision, private=private, token=token, commit_message=message)
    click.echo(f"Pushed {model_dir} to {url}")


def register(group: click.Group) -> None:
    """Attach this area's commands to the main group."""
    for cmd in (view_cmd, push_model_cmd):
        group.add_command(cmd)
