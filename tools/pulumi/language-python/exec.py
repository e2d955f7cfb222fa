# Runs one Pulumi Python program for pulumi-language-python (our host, main.go), the way the
# Pulumi Python SDK expects to be started: the engine's settings come in as flags, the stack's
# config in PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS (read by pulumi.runtime.config itself),
# and the program runs as __main__ inside the stack resource (pulumi.runtime.run_in_stack).
# Exit 32 means "the error is already reported to the engine": the host then bails quietly.
import argparse
import asyncio
import logging
import os
import runpy
import signal
import sys
import traceback

EXIT_REPORTED = 32


def leave_quietly(*_: object) -> None:
    """The engine interrupts (SIGINT) its language host's process group when it is done with the
    program: after an error it has already reported, or on cancel. Nothing is left to say then;
    Python's KeyboardInterrupt traceback would only bury the engine's error."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_REPORTED)


signal.signal(signal.SIGINT, leave_quietly)  # before the SDK's imports, which take a while

try:
    import pulumi
    import pulumi.runtime
    from pulumi.runtime.settings import Settings, configure
except ImportError:
    # print, not sys.stderr.write: the engine shows the host's output either way, and this
    # is the one mistake every new project makes.
    print("The Pulumi Python SDK is not installed in this program's environment: run `pulumi install` "
          "(it creates the virtualenv and runs pip install -r requirements.txt).\n" + traceback.format_exc(),
          file=sys.stderr)
    sys.exit(1)


def monitor_gone(error: BaseException) -> bool:
    """The engine stopped the resource monitor: it is bailing out on an error it has already
    reported (a resource failed), so the program's own failure after that is only an echo."""
    text = str(error)
    return "resource monitor shut down" in text or "Resource monitor has terminated" in text


def main() -> int:
    parser = argparse.ArgumentParser(description="Run a Pulumi Python program")
    for flag in ("monitor", "engine", "project", "stack", "organization", "root-directory", "pwd"):
        parser.add_argument("--" + flag, default=None)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("program")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    opts = parser.parse_args()

    if opts.pwd:
        os.chdir(opts.pwd)
    # The program sees its own arguments, as if started as `python PROGRAM ARGS`.
    sys.argv = [opts.program] + opts.args

    configure(Settings(
        project=opts.project,
        stack=opts.stack,
        monitor=opts.monitor,
        engine=opts.engine,
        parallel=opts.parallel,
        dry_run=opts.dry_run,
        organization=opts.organization or "organization",
        root_directory=opts.root_directory,
    ))

    # Faulted tasks the program never awaited are reported by the SDK as resource errors;
    # asyncio's own "exception was never retrieved" lines would only repeat them.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Through the loop too: its wakeup fd makes the interrupt prompt even when the signal lands on
    # one of gRPC's threads while the loop sleeps in poll.
    loop.add_signal_handler(signal.SIGINT, leave_quietly)
    try:
        # A directory runs its __main__.py with the directory on sys.path (runpy does that).
        loop.run_until_complete(pulumi.runtime.run_in_stack(
            lambda: runpy.run_path(opts.program, run_name="__main__")))
        return 0
    except pulumi.RunError as error:
        if not monitor_gone(error):
            pulumi.log.error(str(error))
        return EXIT_REPORTED
    except Exception as error:  # the program's own exception: report it with its traceback
        if not monitor_gone(error):
            pulumi.log.error("Program failed with an unhandled exception:\n" + traceback.format_exc())
        return EXIT_REPORTED
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.close()
        sys.stdout.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
