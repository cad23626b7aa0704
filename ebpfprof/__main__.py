"""The `ebpfprof` command (and `python -m ebpfprof`).

Signals are handled before anything slow is imported (click, the CLI, BCC), so a Ctrl-C or a
SIGUSR2 in the first milliseconds is served like any other (run/signals.py).
"""


def main() -> None:
    from ebpfprof.run.signals import run_signals

    run_signals.install()
    from ebpfprof.cli import entry

    entry()


if __name__ == "__main__":
    main()
