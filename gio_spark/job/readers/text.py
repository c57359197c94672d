"""Aligned text files: ``PREFIX.<src_lang>`` and ``PREFIX.<tgt_lang>`` (or ``.gz``), one sentence
per line, line i of both a pair. ``PREFIX`` may be a glob matching several prefixes."""
from __future__ import annotations

from pyspark.sql import functions as F

from ...errors import UserError
from ..config import InputConfig
from ..fs import FileInfo, FileSystem
from ..uri import shown
from .base import (EMPTY_PAIR, UNDECODABLE, UNNUMBERED, InputFiles, RawPairs, Reader, blank, glob_hint, invalid_utf8,
                   numbered_lines, pair_id, skip_reason, unescaped)


class TextReader(Reader):
    format = "text"

    def candidates(self, inp: InputConfig, src_lang: str, tgt_lang: str) -> list[str]:
        return [f"{inp.path}.{src_lang}", f"{inp.path}.{src_lang}.gz"]

    def missing(self, inp: InputConfig, src_lang: str, tgt_lang: str, name: str) -> str:
        text = f"; text inputs are prefixes (files PREFIX.{src_lang} and PREFIX.{tgt_lang})"
        for lang in (src_lang, tgt_lang):
            for suffix in (f".{lang}", f".{lang}.gz"):
                if inp.path.endswith(suffix) and len(inp.path) > len(suffix):
                    return f"{text}: did you mean --{name} {inp.path[: -len(suffix)]}?"
        return text + glob_hint(inp.path)

    def list(self, fs: FileSystem, inp: InputConfig, src_lang: str, tgt_lang: str, name: str) -> InputFiles:
        src_files = _lang_files(fs, inp.path, src_lang, name)
        tgt_files = []
        for f in src_files:
            stem = _stem(f.path, src_lang)
            partners = [c for c in (f"{stem}.{tgt_lang}", f"{stem}.{tgt_lang}.gz") if fs.exists(c)]
            if not partners:
                raise UserError(f"{name}: {shown(f.path)} has no aligned file {shown(stem)}.{tgt_lang}[.gz]")
            if len(partners) > 1:
                raise UserError(f"{name}: {' and '.join(map(shown, partners))} are two copies of one side; keep one")
            tgt_files.append(fs.info(partners[0]))
        return InputFiles(src_files, tgt_files)

    def read(self, spark, fs: FileSystem, inp: InputConfig, src_lang: str, tgt_lang: str, name: str,
             files: InputFiles) -> RawPairs:
        """Both languages' files in one scan: each line numbered in its file, then the two lines
        of a pair brought together by (file ordinal, line) in one shuffle."""
        n = len(files.src_paths)
        lines = numbered_lines(spark, fs, files.src_paths + files.tgt_paths)
        for sf, tf, a, b in zip(files.src_paths, files.tgt_paths, lines.counts[:n], lines.counts[n:]):
            if a != b:
                raise UserError(f"{name}: aligned files differ in length: {shown(sf)} has {a} lines, {shown(tf)} has {b}")
            if a == 0:
                raise UserError(f"{name}: input file {shown(sf)} is empty")
        is_tgt = F.col("file_ordinal") >= n
        side = {"src": F.when(~is_tgt, F.col("value")), "tgt": F.when(is_tgt, F.col("value"))}
        df = lines.df.groupBy((F.col("file_ordinal") % n).alias("file_ordinal"), "line").agg(
            *[F.first(v, ignorenulls=True).alias(k) for k, v in side.items()], F.count("*").alias("_n"))
        text = {side: unescaped(F.col(side)) if inp.unescape else F.col(side) for side in ("src", "tgt")}
        df = df.select(
            pair_id("file_ordinal", "line"), text["src"].alias("src"), text["tgt"].alias("tgt"),
            skip_reason((F.col("line").isNull() | (F.col("_n") != 2), UNNUMBERED),
                        (invalid_utf8("src") | invalid_utf8("tgt"), UNDECODABLE),
                        (blank("src") | blank("tgt"), EMPTY_PAIR)),
        )
        return RawPairs(df, files, "line", rows=sum(lines.counts[:n]))


def _lang_files(fs: FileSystem, prefix: str, lang: str, name: str) -> list[FileInfo]:
    """The files of one language: the literal PREFIX.<lang>[.gz] when it exists, else those the
    prefix's glob matches. A plain and a gzipped copy of one file are refused."""
    patterns = [f"{prefix}.{lang}", f"{prefix}.{lang}.gz"]
    literal = [p for p in patterns if fs.exists(p) and not fs.is_dir(p)]  # a name with [ or { in it
    found = {f.path: f for f in ([fs.info(p) for p in literal] if literal else
                                 [f for p in patterns for f in fs.glob(p)])}
    stems: dict[str, str] = {}
    for path in sorted(found):
        stem = _stem(path, lang)
        if stem in stems:
            raise UserError(f"{name}: {shown(stems[stem])} and {shown(path)} are two copies of one file; keep one")
        stems[stem] = path
    if not found:
        raise UserError(f"{name}: no file matches {shown(prefix)}.{lang} or {shown(prefix)}.{lang}.gz")
    return [found[p] for p in sorted(found)]


def _stem(path: str, lang: str) -> str:
    """PREFIX of PREFIX.<lang> or PREFIX.<lang>.gz."""
    suffix = f".{lang}.gz" if path.endswith(f".{lang}.gz") else f".{lang}"
    return path[: -len(suffix)]
