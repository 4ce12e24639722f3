"""Parsing of the option values every command shares: comma lists, integer lists and
``KEY=VALUE`` options (values read as JSON where they parse, else kept as strings).

Errors are :class:`click.BadParameter` naming the option and the offending item.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click


def split_csv(value: str | Iterable[str] | None) -> list[str]:
    """Comma-separated and/or repeated values, stripped, empty items dropped, in order."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [v.strip() for item in items for v in item.split(",") if v.strip()]


def parse_ints(value: str, option: str | None = None) -> list[int]:
    """``"0,10,25"`` -> ``[0, 10, 25]``."""
    try:
        return [int(v) for v in split_csv(value)]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", param_hint=option) from None


def parse_seeds(value: str | int, option: str = "--seeds", *, bare_count: bool = False) -> list[int]:
    """Seeds as every command accepts them: ``"0,1,2"``, ranges ``"0-9"`` (inclusive) and mixes
    (``"0,5-7"``).  ``bare_count=True`` (``compare``, ``demo``: their historical meaning) reads a
    single bare integer ``N`` as the count ``0..N-1``; elsewhere it is the one seed ``N``."""
    text = str(value).strip()
    if bare_count and text.isdigit():
        n = int(text)
        if n < 1:
            raise click.BadParameter(f"a bare number is a count of seeds and must be at least 1, got {n} "
                                     "(for the single seed 0 write 0-0)", param_hint=option)
        return list(range(n))
    out: list[int] = []
    for item in split_csv(text):
        lo, dash, hi = item.partition("-")
        try:
            if dash and lo.strip():
                a, b = int(lo), int(hi)
                if b < a:
                    raise click.BadParameter(f"range {item!r} runs backwards", param_hint=option)
                out.extend(range(a, b + 1))
            else:
                out.append(int(item))
        except ValueError:
            raise click.BadParameter(f"{item!r} is not a seed, a list (0,1,2) or a range (0-9)",
                                     param_hint=option) from None
    if not out:
        raise click.BadParameter("give at least one seed, e.g. 0, 0,1,2 or 0-9", param_hint=option)
    if len(set(out)) != len(out):
        raise click.BadParameter(f"seed(s) given twice in {text!r}", param_hint=option)
    return out


_WORDS = {"True": True, "False": False, "None": None}  # Python's spellings; JSON's parse below


def json_or_str(value: str) -> Any:
    """``"3"`` -> 3, ``"[1, 2]"`` -> [1, 2], ``"true"``/``"True"`` -> True, ``"None"`` -> None,
    anything else as the string."""
    word = value.strip()
    if word in _WORDS:
        return _WORDS[word]
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def parse_key_values(items: Iterable[str], option: str, *, dotted: bool = False,
                     what: str = "KEY=VALUE") -> dict[str, Any]:
    """``("a=1", "b=x")`` -> ``{"a": 1, "b": "x"}``; with ``dotted=True`` keys are
    ``GROUP.KEY`` and the result is ``{group: {key: value}}`` (e.g. per-optimizer options)."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        # the group may be a dotted module path (mymod.sub:MyOpt.KEY): keys have no dots
        group, dot, name = key.rpartition(".") if dotted else ("", "", key)
        if not eq or not key or (dotted and (not dot or not group or not name)):
            raise click.BadParameter(f"{item!r}: expected {what}", param_hint=option)
        if dotted:
            out.setdefault(group, {})[name] = json_or_str(value)
        else:
            out[key] = json_or_str(value)
    return out


# ------------------------------------------------------------------------ executors
#: option name -> (executor it belongs to, keyword of that executor)
_EXECUTOR_FLAGS = {
    "ray_address": ("ray", "address"),
    "ray_gpus_per_task": ("ray", "gpus_per_task"),
    "slurm_partition": ("slurm", "partition"),
    "slurm_time": ("slurm", "time"),
    "slurm_gpus_per_task": ("slurm", "gpus_per_task"),
    "slurm_folder": ("slurm", "folder"),
}


class ExecutorChoice:
    """What ``--executor`` and its options asked for; :meth:`make` builds the executor."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.options = options

    @property
    def local(self) -> bool:
        return self.name == "local"

    def make(self, workers: int = 1) -> Any:
        """The executor (``workers``: processes of the local one); errors as ClickException."""
        from ..executors import ExecutorError, make_executor

        opts = dict(self.options)
        if self.local:
            opts.setdefault("workers", workers)
        try:
            return make_executor(self.name, **opts)
        except ExecutorError as exc:
            raise click.ClickException(str(exc)) from None
        except (TypeError, ValueError) as exc:  # a value of the wrong type (workers=abc)
            raise click.ClickException(f"executor {self.name!r} with options {self.options}: {exc}") from None


def executor_options(fn: Any) -> Any:
    """Add ``--executor`` and its options to a command; it receives them as one ``executor``
    argument (an :class:`ExecutorChoice`), checked before anything runs."""
    import functools

    from ..executors import EXECUTORS, ExecutorError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kw: Any) -> Any:
        name = kw.pop("executor")
        extra = parse_key_values(kw.pop("executor_options"), "--executor-option")
        given = {k: kw.pop(k) for k in list(_EXECUTOR_FLAGS)}
        try:
            EXECUTORS.get(name)
        except ExecutorError as exc:
            raise click.BadParameter(str(exc), param_hint="--executor") from None
        opts: dict[str, Any] = {}
        for key, value in given.items():
            if value is None:
                continue
            owner, keyword = _EXECUTOR_FLAGS[key]
            flag = "--" + key.replace("_", "-")
            if owner != name:
                raise click.UsageError(f"{flag} is an option of --executor {owner} (this run uses {name})")
            opts[keyword] = value
        opts.update(extra)
        return fn(*args, executor=ExecutorChoice(name, opts), **kw)

    decorators = [
        click.option("--executor", default="local", show_default=True,
                     help="Where the jobs run: local (this machine), ray (a Ray cluster) or slurm (an array "
                          "job through submitit); see `nasbench-xfer list executors`."),
        click.option("--ray-address", default=None,
                     help="Ray cluster to join, HEAD:6379 (default: start Ray on this machine)."),
        click.option("--ray-gpus-per-task", type=click.FloatRange(min=0), default=None,
                     help="GPUs per training task on Ray; a fraction packs several on a GPU "
                          "(default: 1 when the cluster has GPUs, else 0)."),
        click.option("--slurm-partition", default=None, help="SLURM partition of the array job."),
        click.option("--slurm-time", default=None, help="Time limit per SLURM task: MINUTES or HH:MM:SS (default 60)."),
        click.option("--slurm-gpus-per-task", type=click.IntRange(min=0), default=None,
                     help="GPUs per SLURM task (default 0)."),
        click.option("--slurm-folder", default=None, type=click.Path(file_okay=False),
                     help="submitit's folder for logs and job pickles, on a file system the nodes share "
                          "(default: ./slurm_logs)."),
        click.option("--executor-option", "executor_options", multiple=True, metavar="KEY=VALUE",
                     help="Any other option of the executor (e.g. num_cpus=8 for a local Ray, "
                          "cluster=local for submitit without SLURM, mem_gb=16)."),
    ]
    for deco in reversed(decorators):
        wrapper = deco(wrapper)
    return wrapper


# ------------------------------------------------------------------------ --config files
def load_config(path: str) -> dict[str, Any]:
    """A config file as a dict: JSON (``.json``), TOML (``.toml``) or YAML (``.yaml``/``.yml``,
    with PyYAML installed).  Errors are :class:`click.BadParameter` naming the file."""
    import os

    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".toml":
            import tomllib
            with open(path, "rb") as fh:
                data: Any = tomllib.load(fh)
        elif ext in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise click.BadParameter(f"{path}: reading YAML needs PyYAML (pip install pyyaml); "
                                         "JSON and TOML need nothing", param_hint="--config") from None
            with open(path) as fh:
                data = yaml.safe_load(fh)
        else:
            with open(path) as fh:
                data = json.load(fh)
    except click.BadParameter:
        raise
    except Exception as exc:  # noqa: BLE001 - JSON/TOML/YAML parse errors all name the file
        raise click.BadParameter(f"{path}: not a valid config file ({type(exc).__name__}: {exc})",
                                 param_hint="--config") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: expected a mapping of option names to values at the top level, "
                                 f"got {type(data).__name__}", param_hint="--config")
    return data


def _config_value(param: click.Parameter, value: Any) -> Any:
    """A config value in the form the option's command-line string would have; a number where
    the option takes a whole number must be one (``5.7`` or ``true`` are refused, as on the
    command line, not truncated)."""
    if isinstance(param.type, click.types.IntParamType) and not getattr(param, "multiple", False):
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole:
            if not isinstance(value, str):
                raise click.BadParameter(f"{param.name} = {value!r}: expected a whole number")
        elif not isinstance(value, str):
            return int(value)
    if getattr(param, "multiple", False):
        if isinstance(value, dict):  # {"OPT": {"KEY": V}} or {"KEY": V} -> OPT.KEY=V / KEY=V
            items = []
            for k, v in value.items():
                if isinstance(v, dict):
                    items += [f"{k}.{k2}={json.dumps(v2)}" for k2, v2 in v.items()]
                else:
                    items.append(f"{k}={json.dumps(v)}")
            return items
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if isinstance(value, list):
        if param.name == "seeds" and len(value) == 1:
            return f"{value[0]}-{value[0]}"  # one seed, not a count
        return ",".join(str(v) for v in value)
    return value


def config_option(*, spec_keys: dict[str, Any] | None = None, nulls: dict[str, Any] | None = None,
                  help_extra: str = "") -> Any:
    """Add ``--config FILE`` to a command: its options' values from a JSON/TOML/YAML file, the
    command line overriding them.  Keys are option names (``source-size`` or ``source_size``);
    lists become comma lists; a mapping under a repeatable ``KEY=VALUE`` option becomes its items.

    ``spec_keys`` names keys that a command's own ``spec.json`` holds but that are no option:
    each maps to the only value the command can honour (None: any value, recorded only), so a
    run's ``spec.json`` can be given back as its config.  ``nulls`` maps options whose null
    in a spec stands for a command-line value (``compare``'s ``source_size: null`` is
    ``--source-size 0``, all); any other null leaves the option's default.  The file's values
    are kept in ``ctx.meta["config"]``.
    """
    extra = dict(spec_keys or {})
    null_as = dict(nulls or {})

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is None:
            return None
        data = load_config(value)
        params: dict[str, click.Parameter] = {}  # by parameter name and by every long option spelling
        for p in ctx.command.params:
            if isinstance(p, click.Option) and p.name and p.name != param.name:
                params[p.name] = p
                for opt in p.opts:
                    if opt.startswith("--"):
                        params[opt[2:].replace("-", "_")] = p
        default_map: dict[str, Any] = {}
        unknown: list[str] = []
        for key, val in data.items():
            name = str(key).replace("-", "_")
            if name in extra:
                if extra[name] is not None and val != extra[name]:
                    raise click.BadParameter(f"{value}: {key} = {val!r}, but this command can only run with "
                                             f"{extra[name]!r}", param_hint="--config")
                continue
            target = params.get(name)
            if target is None or target.name is None:
                unknown.append(str(key))
                continue
            if val is None and target.name in null_as:
                val = null_as[target.name]
            if val is not None:
                try:
                    default_map[target.name] = _config_value(target, val)
                except click.BadParameter as exc:
                    raise click.BadParameter(f"{value}: {exc.message}", param_hint="--config") from None
        if unknown:
            known = sorted({next((o[2:] for o in p.opts if o.startswith("--")), str(p.name))
                            for p in params.values()})
            raise click.BadParameter(f"{value}: unknown key(s) {', '.join(unknown)}; this command's options are "
                                     f"{', '.join(known)}", param_hint="--config")
        ctx.default_map = {**(ctx.default_map or {}), **default_map}
        ctx.meta["config"] = data
        return value

    return click.option("--config", type=click.Path(exists=True, dir_okay=False), is_eager=True,
                        expose_value=False, callback=callback,
                        help="Option values from a JSON, TOML or YAML file (keys: option names; the command "
                             "line overrides them)." + help_extra)


# ------------------------------------------------------------------------ the store argument
def store_input(help: str, *, exists: bool = False) -> Any:
    """The store a command works on, given either way on every command: as the first
    argument ``STORE`` or as ``-s/--store``.  The command receives it as ``store``."""
    import functools

    def deco(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            positional, option = kw.pop("store_arg"), kw.pop("store")
            ctx = click.get_current_context(silent=True)
            from_config = (ctx is not None and ctx.get_parameter_source("store")
                           == click.core.ParameterSource.DEFAULT_MAP)
            if positional and option and from_config:
                option = None  # the command line overrides the config file
            if positional and option and positional != option:
                raise click.UsageError(f"two stores given: {positional} (STORE) and {option} (--store); give one")
            store = positional or option
            if not store:
                raise click.UsageError("missing the store: give it as the first argument STORE or with -s/--store")
            return fn(*args, store=store, **kw)

        path = click.Path(dir_okay=False, exists=exists)
        wrapper = click.option("--store", "-s", "store", default=None, type=path,
                               help=help + " Also accepted as the first argument STORE.")(wrapper)
        return click.argument("store_arg", metavar="[STORE]", required=False, type=path)(wrapper)

    return deco
