"""mkdocs hooks of the documentation site: one generated page per ``nasbench-xfer`` command
(rendered by mkdocs-click from the click command itself, so the pages cannot drift from the
command line), listed under "Commands" in the navigation."""
from __future__ import annotations

import sys
from typing import Any

PROG = "nasbench-xfer"


def _commands() -> dict[str, tuple[str, str]]:
    """{command name: (module, attribute)} of every top-level command."""
    from nasbench_xfer.cli.main import cli

    out = {}
    for name in sorted(cli.commands):
        cmd = cli.commands[name]
        module = sys.modules[cmd.callback.__module__] if cmd.callback is not None else None
        if module is None:  # a group without a callback: find the module that defines the object
            module = next(m for m in list(sys.modules.values())
                          if getattr(m, "__name__", "").startswith("nasbench_xfer.cli.")
                          and any(v is cmd for v in vars(m).values()))
        attr = next(k for k, v in vars(module).items() if v is cmd)
        out[name] = (module.__name__, attr)
    return out


def _page(name: str) -> str:
    return f"commands/{name}.md"


def on_config(config: Any, **kwargs: Any) -> Any:
    for entry in config["nav"]:
        if isinstance(entry, dict) and "Commands" in entry:
            entry["Commands"] = [{"Overview": "site/commands.md"}] + [{name: _page(name)} for name in _commands()]
    return config


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    from mkdocs.structure.files import File

    for name, (module, attr) in _commands().items():
        content = (f"::: mkdocs-click\n    :module: {module}\n    :command: {attr}\n"
                   f"    :prog_name: {PROG} {name}\n    :depth: 0\n    :style: table\n    :list_subcommands: true\n")
        files.append(File.generated(config, _page(name), content=content))
    return files
