"""CLI commands of the corpora area: ``blemore corpus NAME DIR -o metadata.csv`` (one
subcommand per recipe of :data:`blemore.corpora.RECIPES`) and ``blemore corpus combine``.

Thin layer over :func:`blemore.corpora.prepare` / :func:`blemore.corpora.combine`. Options
may also come from a TOML file (``--config``): ``folds``, ``seed``, ``pattern``, a ``[map]``
table (``surprise = "fea"``) and an ``[options]`` table (recipe options such as
``modality = "audio"``); command-line options win over the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from blemore._toml import tomllib
from blemore.cli._errors import UserError


def _kv(items: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k.strip():
            raise UserError(f"{what} {it!r} is not KEY=VALUE")
        out[k.strip()] = v.strip()
    return out


def _config(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not a valid TOML file ({e})") from None
    unknown = set(raw) - {"folds", "seed", "pattern", "map", "options"}
    if unknown:
        raise UserError(f"{path}: unknown key(s) {sorted(unknown)}; known: folds, seed, pattern, map, options")
    return raw


def _recipe_command(name: str) -> click.Command:
    from blemore.corpora import RECIPES

    recipe = RECIPES.get(name)
    doc = (recipe.__module__ and __import__(recipe.__module__, fromlist=["_"]).__doc__) or ""

    @click.command(name, help=doc.strip().replace("``", "") + f"\n\nNaming read: {recipe.naming}.",
                   short_help=doc.strip().split("\n")[0].replace("``", "")[:60].rstrip(" (,:") + ("..." if len(doc.strip().split("\n")[0]) > 60 else ""))
    @click.argument("root", type=click.Path(exists=True, file_okay=False))
    @click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Metadata CSV to write.")
    @click.option("--map", "maps", multiple=True, metavar="CATEGORY=CODE",
                  help="Map a category into the six codes (surprise=fea, calm=neu) or drop it (contempt=drop). "
                       "Repeatable.")
    @click.option("--folds", default=None, help="Actor-disjoint folds: a number (default 5) or loso.")
    @click.option("--seed", type=int, default=None, help="Fold assignment seed (default 0).")
    @click.option("--pattern", default=None, help="generic: regex with named groups actor, emotion "
                                                   "(and gender, intensity, id).")
    @click.option("--option", "opts", multiple=True, metavar="KEY=VALUE",
                  help="Recipe option, e.g. modality=audio (ravdess), view=front (mead).")
    @click.option("--config", "config", type=click.Path(exists=True, dir_okay=False),
                  help="TOML file with folds, seed, pattern, [map], [options].")
    @click.option("--link-media", type=click.Path(file_okay=False), default=None,
                  help="Also make links FOLDER/<clip_id>.<ext> to the kept files (unique names for blemore extract).")
    def cmd(root, output, maps, folds, seed, pattern, opts, config, link_media):
        from blemore.corpora import parse_map, prepare

        cfg = _config(config)
        user_map = {str(k): str(v) for k, v in dict(cfg.get("map", {})).items()}
        user_map.update(parse_map(maps))
        options = {str(k): v for k, v in dict(cfg.get("options", {})).items()}
        options.update(_kv(opts, "--option"))
        pat = pattern if pattern is not None else cfg.get("pattern")
        if pat is not None:
            if name != "generic":
                raise UserError(f"--pattern is for the generic recipe, not {name}")
            options["pattern"] = pat
        res = prepare(name, root, map=user_map, folds=folds if folds is not None else cfg.get("folds", 5),
                      seed=seed if seed is not None else int(cfg.get("seed", 0)), **options)
        res.write(output)
        for line in res.summary():
            click.echo(line, err=True)
        if link_media:
            n = res.link_media(link_media)
            click.echo(f"{n} media link(s) made in {link_media}", err=True)
        click.echo(f"wrote {len(res.metadata)} clips to {output}")

    return cmd


class _CorpusGroup(click.Group):
    """Subcommands: one per registered recipe (looked up lazily), plus ``combine``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from blemore.corpora import RECIPES

        return sorted(RECIPES.names()) + ["combine"]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "combine":
            return combine_cmd
        from blemore.corpora import RECIPES

        return _recipe_command(name) if name in RECIPES else None


@click.command("combine")
@click.argument("metadata", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--folds", default=None, help="Remake actor-disjoint folds over all corpora (a number or loso); "
                                            "default: keep each file's folds.")
@click.option("--seed", type=int, default=0)
def combine_cmd(metadata, output, folds, seed):
    """Concatenate the metadata of several corpora into one training set (a corpus column;
    actors namespaced per corpus, folds disjoint by actor within each corpus)."""
    from blemore._io import atomic_write_bytes
    from blemore.corpora import combine

    table, line = combine(metadata, folds=folds, seed=seed)
    atomic_write_bytes(output, table.to_csv(index=False).encode("utf-8"))
    per = table.groupby("corpus").size()
    click.echo(", ".join(f"{c}: {n} clips" for c, n in per.items()) + f"; {line}", err=True)
    click.echo(f"wrote {len(table)} clips to {output}")


@click.group("corpus", cls=_CorpusGroup)
def corpus_group() -> None:
    """Metadata for other corpora: blemore corpus NAME DIR -o metadata.csv (RAVDESS, CREMA-D, MEAD,
    EmoDB, a regex for any other), and combine several into one training set."""


def register(group: click.Group) -> None:
    group.add_command(corpus_group)
