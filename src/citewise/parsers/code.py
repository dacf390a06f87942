"""Source code: Python split by its syntax tree, other languages by blank lines."""

from __future__ import annotations

import ast
from pathlib import Path

from ..documents import Block, ParsedDocument
from ._common import line_offsets, paragraph_blocks, read_text, trimmed_end

LANGUAGES = {
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".jsx": "javascript",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".kt": "kotlin",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".cs": "csharp",
    ".rb": "ruby",
    ".php": "php",
    ".swift": "swift",
    ".scala": "scala",
    ".sh": "shell",
    ".bash": "shell",
    ".sql": "sql",
    ".lua": "lua",
    ".r": "r",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
}
SUFFIXES = tuple(LANGUAGES)


def parse(path: Path) -> ParsedDocument:
    text = read_text(path)
    language = LANGUAGES[path.suffix.lower()]
    blocks = _python_blocks(text) if language == "python" else None
    if blocks is None:
        blocks = paragraph_blocks(text, kind="code")
    return ParsedDocument(
        text=text, blocks=blocks, title=path.name, metadata={"language": language}
    )


def _python_blocks(text: str) -> list[Block] | None:
    """One block per top-level statement run, function, class and method."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None  # still index it, by paragraphs
    offsets = line_offsets(text)
    blocks: list[Block] = []
    _definition_blocks(tree.body, (), offsets, text, blocks)
    return blocks


def _definition_blocks(
    body: list[ast.stmt], path: tuple[str, ...], offsets: list[int], text: str, out: list[Block]
) -> None:
    for node in body:
        first_line = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        start, end = offsets[first_line - 1], offsets[node.end_lineno or first_line]
        end = trimmed_end(text, end, start)
        if isinstance(node, ast.ClassDef):
            name = (*path, f"class {node.name}")
            header_end = offsets[node.body[0].lineno - 1] if node.body else end
            out.append(Block(start, trimmed_end(text, header_end, start), name, None, "code"))
            _definition_blocks(node.body, name, offsets, text, out)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.append(Block(start, end, (*path, f"def {node.name}"), None, "code"))
        elif end > start:
            out.append(Block(start, end, path, None, "code"))
