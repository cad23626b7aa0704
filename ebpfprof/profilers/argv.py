"""A profiler's own options (the text in ``profile/-F 997 -g/``), parsed with clear errors.

Each profiler declares its options as ``Opt`` rows; ``parse_argv`` gives their values or raises
a SelectorError that names the selector, the option and the options it knows. The options
every profiler shares (callchains, excludes, -N, -m) are ``COMMON``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ebpfprof.errors import SelectorError, close_matches
from ebpfprof.lang.selector.ast import ProfilerSelector

__all__ = ["Opt", "parse_argv", "COMMON", "options_help"]


@dataclass(frozen=True)
class Opt:
    names: tuple[str, ...]        # "-F", "--freq"
    dest: str
    metavar: str | None = None    # takes a value (an int unless kind says otherwise)
    help: str = ""
    default: object = None
    const: object = True          # a flag's value when given
    low: int | None = None        # an int value's bounds
    high: int | None = None
    power_of_two: bool = False


COMMON: tuple[Opt, ...] = (
    Opt(("-g", "--call-graph"), "call_graph", help="callchains on every sample", default=False),
    Opt(("--exclude-user",), "exclude_user", help="no samples in user space", default=False),
    Opt(("--exclude-kernel",), "exclude_kernel", help="no samples in the kernel", default=False),
    Opt(("--user-callchain",), "user_callchain", help="user frames in callchains (default)", default=None),
    Opt(("--no-user-callchain",), "user_callchain", help="no user frames", default=None, const=False),
    Opt(("--kernel-callchain",), "kernel_callchain", help="kernel frames in callchains (default)", default=None),
    Opt(("--no-kernel-callchain",), "kernel_callchain", help="no kernel frames", default=None, const=False),
    Opt(("-N",), "budget", "N", "this source stops after N samples", low=1),
    Opt(("-m",), "mmap_pages", "PAGES", "ring pages per CPU for this source (a power of two)", low=1,
        power_of_two=True),
)


def options_help(opts: tuple[Opt, ...]) -> str:
    """``-F HZ, -g, --exclude-user, ...``: the options, for hints and help."""
    seen: list[str] = []
    for o in opts:
        text = o.names[0] + (f" {o.metavar}" if o.metavar else "")
        if text not in seen:
            seen.append(text)
    return ", ".join(seen)


def _error(sel: ProfilerSelector, message: str, opts: tuple[Opt, ...], hint: str = "") -> SelectorError:
    return SelectorError(f"{sel.text}: {message}",
                         hint=hint or f"options of {sel.name}: {options_help(opts)}, --filter EXPR")


def parse_argv(sel: ProfilerSelector, opts: tuple[Opt, ...], *,
               positional: str | None = None, max_positional: int = 0) -> tuple[dict, list[str]]:
    """The values of ``opts`` in ``sel.options`` (defaults for the others), and the positional
    arguments (when the profiler takes them: ``positional`` names them in errors)."""
    by_name = {n: o for o in opts for n in o.names}
    values = {o.dest: o.default for o in opts}
    given: set[str] = set()
    args: list[str] = []
    argv = list(sel.options)
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        name, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        if word.startswith("-") and len(word) > 2 and not word.startswith("--") and word[:2] in by_name \
                and by_name[word[:2]].metavar:
            name, inline, eq = word[:2], word[2:], "="          # -F997, as getopt takes it
        if not word.startswith("-") or word == "-" or _is_number(word):
            if positional is None or len(args) >= max_positional:
                what = (f"at most {max_positional} {positional}" if positional and max_positional
                        else "no arguments")
                raise _error(sel, f"unexpected argument '{word}' ({sel.name} takes {what})", opts)
            args.append(word)
            continue
        opt = by_name.get(name)
        if opt is None:
            guess = close_matches(name, list(by_name))
            raise _error(sel, f"unknown option '{name}'" + (f"; did you mean '{guess[0]}'?" if guess else ""),
                         opts)
        if opt.dest in given and opt.metavar:
            raise _error(sel, f"option '{name}' given twice", opts)
        given.add(opt.dest)
        if not opt.metavar:
            if eq:
                raise _error(sel, f"option '{name}' takes no value", opts)
            values[opt.dest] = opt.const
            continue
        if eq:
            text = inline
        elif i < len(argv):
            text = argv[i]
            i += 1
        else:
            raise _error(sel, f"option '{name}' needs a value: {name} {opt.metavar}", opts)
        values[opt.dest] = _int_value(sel, opt, name, text, opts)
    return values, args


def _is_number(word: str) -> bool:
    try:
        int(word, 0)
        return True
    except ValueError:
        return False


def _int_value(sel: ProfilerSelector, opt: Opt, name: str, text: str, opts: tuple[Opt, ...]) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise _error(sel, f"option '{name}' takes a whole number, not '{text}'", opts) from None
    if opt.low is not None and value < opt.low:
        raise _error(sel, f"{name} {value}: must be at least {opt.low}", opts)
    if opt.high is not None and value > opt.high:
        raise _error(sel, f"{name} {value}: must be at most {opt.high}", opts)
    if opt.power_of_two and value & (value - 1):
        raise _error(sel, f"{name} {value}: must be a power of two (e.g. {1 << (value.bit_length() - 1)})", opts)
    return value
